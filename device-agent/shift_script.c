/*
 * shift_script.c - a queue of timed presses, refilled with a new episode
 * when it runs empty. splitmix64 drives the choices (simulation only,
 * never anything secret).
 */
#include "device-agent/shift_script.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "device-agent/control.h"

#define RANDOM_PREFIX "random:"
#define DEFAULT_MEAN_S 30
#define MAX_STEPS 4
#define SCALE_BASE_MS 30000 /* the in-episode delays are written for a 30 s mean */

typedef struct shift_step {
    bc_control_verb verb;
    int score;
    int64_t delay_ms; /* after the previous step */
} shift_step;

struct bc_shift {
    bc_reactor *r;
    bc_camera *cam;
    bc_shift_spec spec;
    uint64_t rng;
    bc_timer timer;
    shift_step steps[MAX_STEPS];
    size_t count, next;
    uint64_t presses;
};

static uint64_t next_random(bc_shift *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A whole number of milliseconds in [lo_s, hi_s] seconds, scaled. */
static int64_t between(bc_shift *s, int64_t lo_s, int64_t hi_s)
{
    int64_t lo = lo_s * 1000 * s->spec.mean_ms / SCALE_BASE_MS;
    int64_t hi = hi_s * 1000 * s->spec.mean_ms / SCALE_BASE_MS;
    if (hi <= lo)
        return lo;
    return lo + (int64_t)(next_random(s) % (uint64_t)(hi - lo + 1));
}

static void add(bc_shift *s, bc_control_verb verb, int score, int64_t delay_ms)
{
    s->steps[s->count].verb = verb;
    s->steps[s->count].score = score;
    s->steps[s->count].delay_ms = delay_ms;
    s->count++;
}

static void plan_episode(bc_shift *s)
{
    uint64_t pick = next_random(s) % 100;
    int64_t patrol = s->spec.mean_ms / 2 + (int64_t)(next_random(s) % (uint64_t)s->spec.mean_ms);
    s->count = 0;
    s->next = 0;
    if (pick < 50) {
        add(s, BC_CONTROL_WARN, 0, patrol);
        add(s, BC_CONTROL_WARN, 0, between(s, 2, 10));
        add(s, BC_CONTROL_RECORD, 0, between(s, 1, 5));
        add(s, BC_CONTROL_STOP, 0, between(s, 10, 60));
    } else if (pick < 70) {
        add(s, BC_CONTROL_WARN, 0, patrol);
    } else if (pick < 80) {
        add(s, BC_CONTROL_EMERGENCY, 0, patrol);
        add(s, BC_CONTROL_STOP, 0, between(s, 10, 40));
    } else if (pick < 90) {
        add(s, BC_CONTROL_DOCK, 0, patrol);
        add(s, BC_CONTROL_UNDOCK, 0, between(s, 30, 120));
    } else {
        add(s, BC_CONTROL_SURVEY, 1 + (int)(next_random(s) % 5), patrol);
    }
}

static void arm(bc_shift *s)
{
    if (s->next >= s->count)
        plan_episode(s);
    if (bc_reactor_timer_start(s->r, &s->timer, s->steps[s->next].delay_ms, 0) != BC_OK)
        log_errorx("shift script: cannot start its timer; this officer stops pressing");
}

static void on_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_shift *s = userdata;
    bc_control_command cmd;
    char answer[BC_CONTROL_ANSWER_MAX + 1];
    memset(&cmd, 0, sizeof(cmd));
    cmd.verb = s->steps[s->next].verb;
    cmd.score = s->steps[s->next].score;
    s->next++;
    s->presses++;
    bc_camera_command(s->cam, &cmd, answer, sizeof(answer));
    bc_camera_status st;
    bc_camera_status_get(s->cam, &st);
    log_debug("%s: script pressed %s: %s", st.device, bc_control_verb_name(cmd.verb), answer);
    arm(s);
}

bc_status bc_shift_parse(const char *spec, bc_shift_spec *out, bc_error *err)
{
    if (spec == NULL || strncmp(spec, RANDOM_PREFIX, strlen(RANDOM_PREFIX)) != 0)
        return bc_fail(err, BC_ERR_INVAL, "script '%s': expected random:SEED[:MEAN_S]",
                       spec != NULL ? spec : "");
    const char *p = spec + strlen(RANDOM_PREFIX);
    char *end = NULL;
    errno = 0;
    unsigned long long seed = strtoull(p, &end, 10);
    if (errno != 0 || end == p || (*end != '\0' && *end != ':'))
        return bc_fail(err, BC_ERR_INVAL, "script '%s': SEED is not a number", spec);
    long long mean_s = DEFAULT_MEAN_S;
    if (*end == ':') {
        p = end + 1;
        errno = 0;
        mean_s = strtoll(p, &end, 10);
        if (errno != 0 || end == p || *end != '\0' || mean_s < 1 || mean_s > 86400)
            return bc_fail(err, BC_ERR_INVAL, "script '%s': MEAN_S must be 1..86400", spec);
    }
    out->seed = seed;
    out->mean_ms = mean_s * 1000;
    return BC_OK;
}

bc_status bc_shift_new(bc_reactor *r, bc_camera *cam, const bc_shift_spec *spec, uint64_t index,
                       bc_shift **out, bc_error *err)
{
    *out = NULL;
    bc_shift *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "shift script: out of memory");
    s->r = r;
    s->cam = cam;
    s->spec = *spec;
    if (s->spec.mean_ms < 1000)
        s->spec.mean_ms = 1000;
    s->rng = spec->seed ^ (index * 0xd1b54a32d192ed03ULL);
    bc_timer_init(&s->timer, on_timer, s);
    arm(s);
    *out = s;
    return BC_OK;
}

uint64_t bc_shift_presses(const bc_shift *s)
{
    return s->presses;
}

void bc_shift_free(bc_shift *s)
{
    if (s == NULL)
        return;
    bc_reactor_timer_stop(s->r, &s->timer);
    free(s);
}
