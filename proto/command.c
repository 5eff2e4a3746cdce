/* command.c: being written. */
