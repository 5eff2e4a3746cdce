/* recording.c: being written. */
