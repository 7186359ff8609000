/* sms_twilio: being written (issue 4) */
