/* json.c: being written. */
