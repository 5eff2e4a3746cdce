#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t (*clock_source)(void);
static int64_t offset_ms;
static int64_t offset_checked_at = -1000000;

static int64_t timespec_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bc_clock_monotonic_ms(void)
{
    return timespec_ms(CLOCK_MONOTONIC);
}

void bc_clock_set_source(int64_t (*source)(void))
{
    clock_source = source;
}

static void refresh_offset(void)
{
    int64_t now = bc_clock_monotonic_ms();
    if (now - offset_checked_at < 100)
        return;
    offset_checked_at = now;
    const char *path = getenv("BODYCAM_CLOCK_FILE");
    if (path == NULL) {
        offset_ms = 0;
        return;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        offset_ms = 0;
        return;
    }
    long long value = 0;
    offset_ms = fscanf(f, "%lld", &value) == 1 ? (int64_t)value : 0;
    fclose(f);
}

int64_t bc_clock_now_ms(void)
{
    if (clock_source != NULL)
        return clock_source();
    refresh_offset();
    return timespec_ms(CLOCK_REALTIME) + offset_ms;
}
