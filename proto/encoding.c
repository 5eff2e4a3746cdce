/* encoding.c: being written. */
