/* webhook: being written (issue 4) */
