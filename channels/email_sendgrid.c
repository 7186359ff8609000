/* email_sendgrid: being written (issue 4) */
