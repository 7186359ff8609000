/* email_smtp: being written (issue 4) */
