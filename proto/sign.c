/* sign.c: being written. */
