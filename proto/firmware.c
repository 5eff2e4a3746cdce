/* firmware.c: being written. */
