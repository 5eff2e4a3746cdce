/* ca.c: being written. */
