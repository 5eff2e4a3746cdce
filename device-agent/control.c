/*
 * control.c - the control socket: accept, read lines, answer.
 *
 * Each client has an input buffer and an output buffer. After every read
 * or write the client is "pumped": pending answers are flushed, then
 * complete lines are answered one by one as long as there is room for a
 * whole answer in the output buffer. So a client that pipelines commands
 * but never reads its answers stops being read (backpressure) instead of
 * growing our memory, and answers always come out in command order.
 *
 * A client is closed when it sent EOF (a partial last line is dropped),
 * said "quit", or sent a line over the limit - each time after its
 * pending answers were written - or when a read or write fails. Writes use
 * MSG_NOSIGNAL: a client that vanished must not SIGPIPE the agent.
 */
#include "device-agent/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd.h"
#include "common/log.h"

#define IN_CAP 1024
#define OUT_CAP 2048
#define ANSWER_ROOM (BC_CONTROL_ANSWER_MAX + 1) /* answer + newline */

typedef enum arg_kind { ARG_NONE, ARG_SCORE, ARG_ID } arg_kind;

static const struct {
    const char *name;
    bc_control_verb verb;
    arg_kind arg;
} verbs[] = {
    {"warn", BC_CONTROL_WARN, ARG_NONE},
    {"record", BC_CONTROL_RECORD, ARG_NONE},
    {"emergency", BC_CONTROL_EMERGENCY, ARG_NONE},
    {"stop", BC_CONTROL_STOP, ARG_NONE},
    {"dock", BC_CONTROL_DOCK, ARG_NONE},
    {"undock", BC_CONTROL_UNDOCK, ARG_NONE},
    {"status", BC_CONTROL_STATUS, ARG_NONE},
    {"survey", BC_CONTROL_SURVEY, ARG_SCORE},
    {"view", BC_CONTROL_VIEW, ARG_ID},
    {"delete", BC_CONTROL_DELETE, ARG_ID},
    {"quit", BC_CONTROL_QUIT, ARG_NONE},
};

#define VERB_COUNT (sizeof(verbs) / sizeof(verbs[0]))

typedef struct control_client {
    bc_control *ctl;
    int fd;
    char in[IN_CAP];
    size_t in_len;
    char out[OUT_CAP];
    size_t out_len;
    bool eof;     /* the client will send nothing more */
    bool closing; /* close once the output is flushed */
    struct control_client *next, *prev;
} control_client;

struct bc_control {
    bc_reactor *r;
    int listen_fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
    bc_control_handler handler;
    void *userdata;
    control_client *clients;
    size_t nclients;
};

/* ---- parsing ---- */

const char *bc_control_verb_name(bc_control_verb verb)
{
    for (size_t i = 0; i < VERB_COUNT; i++) {
        if (verbs[i].verb == verb)
            return verbs[i].name;
    }
    return "unknown";
}

/* Copies word for an error message: printable ASCII only, at most 32. */
static void printable(const char *word, char *out, size_t size)
{
    size_t n = 0;
    for (; *word != '\0' && n + 1 < size && n < 32; word++)
        out[n++] = (*word >= 0x20 && *word < 0x7f && *word != '\'') ? *word : '?';
    out[n] = '\0';
}

bc_status bc_control_parse(const char *line, bc_control_command *out, bc_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strlen(line) > BC_CONTROL_LINE_MAX)
        return bc_fail(err, BC_ERR_PARSE, "line too long");
    char buf[BC_CONTROL_LINE_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", line);
    char *words[3];
    size_t n = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (n == 3)
            break;
        words[n++] = w;
    }
    if (n == 0)
        return bc_fail(err, BC_ERR_PARSE, "empty command");
    size_t v = 0;
    while (v < VERB_COUNT && strcmp(words[0], verbs[v].name) != 0)
        v++;
    if (v == VERB_COUNT) {
        char shown[33];
        printable(words[0], shown, sizeof(shown));
        return bc_fail(err, BC_ERR_PARSE, "unknown command '%s'", shown);
    }
    out->verb = verbs[v].verb;
    const char *name = verbs[v].name;
    switch (verbs[v].arg) {
    case ARG_NONE:
        if (n != 1)
            return bc_fail(err, BC_ERR_PARSE, "'%s' takes no argument", name);
        return BC_OK;
    case ARG_SCORE:
        if (n != 2 || strlen(words[1]) != 1 || words[1][0] < '1' || words[1][0] > '5')
            return bc_fail(err, BC_ERR_PARSE, "'%s' needs a score from 1 to 5", name);
        out->score = words[1][0] - '0';
        return BC_OK;
    default:
        if (n != 2 || !bc_id_valid(words[1]))
            return bc_fail(err, BC_ERR_PARSE,
                           "'%s' needs one recording id ([A-Za-z0-9_-], 1 to 64 characters)", name);
        snprintf(out->id, sizeof(out->id), "%s", words[1]);
        return BC_OK;
    }
}

/* ---- clients ---- */

static void client_free(control_client *cl)
{
    bc_control *c = cl->ctl;
    bc_reactor_remove_fd(c->r, cl->fd);
    close(cl->fd);
    if (cl->prev != NULL)
        cl->prev->next = cl->next;
    else
        c->clients = cl->next;
    if (cl->next != NULL)
        cl->next->prev = cl->prev;
    c->nclients--;
    free(cl);
}

/* Appends one answer line (sanitised, newline added); room was checked. */
static void queue_answer(control_client *cl, const char *answer)
{
    size_t n = strnlen(answer, BC_CONTROL_ANSWER_MAX);
    if (n == 0) {
        answer = "error: no answer";
        n = strlen(answer);
    }
    for (size_t i = 0; i < n; i++) {
        char ch = answer[i];
        cl->out[cl->out_len++] = ((unsigned char)ch < 0x20 || ch == 0x7f) ? ' ' : ch;
    }
    cl->out[cl->out_len++] = '\n';
}

static void answer_line(control_client *cl, const char *line)
{
    bc_control_command cmd;
    bc_error perr;
    bc_error_clear(&perr);
    char answer[BC_CONTROL_ANSWER_MAX + 1];
    if (bc_control_parse(line, &cmd, &perr) != BC_OK) {
        snprintf(answer, sizeof(answer), "error: %s", perr.text);
    } else if (cmd.verb == BC_CONTROL_QUIT) {
        snprintf(answer, sizeof(answer), "ok bye");
        cl->closing = true;
    } else {
        answer[0] = '\0';
        cl->ctl->handler(&cmd, answer, sizeof(answer), cl->ctl->userdata);
        answer[BC_CONTROL_ANSWER_MAX] = '\0';
    }
    queue_answer(cl, answer);
}

/* Answers complete lines while an answer fits; 1 if it did anything. */
static int process_lines(control_client *cl)
{
    int progressed = 0;
    while (!cl->closing && OUT_CAP - cl->out_len >= ANSWER_ROOM) {
        char *nl = memchr(cl->in, '\n', cl->in_len);
        size_t len = nl != NULL ? (size_t)(nl - cl->in) : cl->in_len;
        if (len > BC_CONTROL_LINE_MAX) {
            queue_answer(cl, "error: line too long");
            cl->closing = true;
            cl->in_len = 0;
            return 1;
        }
        if (nl == NULL)
            break;
        char line[BC_CONTROL_LINE_MAX + 1];
        memcpy(line, cl->in, len);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        size_t used = (size_t)(nl - cl->in) + 1;
        memmove(cl->in, cl->in + used, cl->in_len - used);
        cl->in_len -= used;
        answer_line(cl, line);
        progressed = 1;
    }
    return progressed;
}

/* Writes what it can; -1 when the client is gone. */
static int flush(control_client *cl)
{
    while (cl->out_len > 0) {
        ssize_t n = send(cl->fd, cl->out, cl->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        memmove(cl->out, cl->out + n, cl->out_len - (size_t)n);
        cl->out_len -= (size_t)n;
    }
    return 0;
}

/* Reads what is there; -1 on a read error. */
static int fill(control_client *cl)
{
    while (!cl->eof && cl->in_len < IN_CAP) {
        ssize_t n = read(cl->fd, cl->in + cl->in_len, IN_CAP - cl->in_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        if (n == 0)
            cl->eof = true;
        cl->in_len += (size_t)n;
    }
    return 0;
}

/* Flushes and answers until stuck, then closes the client or sets its
 * interest. The client may be freed: do not touch it afterwards. */
static void pump(control_client *cl)
{
    do {
        if (flush(cl) != 0) {
            client_free(cl);
            return;
        }
    } while (process_lines(cl));
    bool done = cl->closing || (cl->eof && memchr(cl->in, '\n', cl->in_len) == NULL);
    if (done && cl->out_len == 0) {
        client_free(cl);
        return;
    }
    unsigned interest = 0;
    if (!cl->eof && !cl->closing && cl->in_len < IN_CAP)
        interest |= BC_REACTOR_READ;
    if (cl->out_len > 0)
        interest |= BC_REACTOR_WRITE;
    bc_reactor_modify_fd(cl->ctl->r, cl->fd, interest);
}

static void on_client(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    control_client *cl = userdata;
    if ((events & BC_REACTOR_READ) && fill(cl) != 0) {
        client_free(cl);
        return;
    }
    pump(cl);
}

static void add_client(bc_control *c, int fd)
{
    if (c->nclients >= BC_CONTROL_MAX_CLIENTS) {
        static const char busy[] = "error: too many clients\n";
        ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
        log_warnx("control: refusing a client, %zu already connected", c->nclients);
        close(fd);
        return;
    }
    control_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        log_errorx("control: no memory for a client");
        close(fd);
        return;
    }
    cl->ctl = c;
    cl->fd = fd;
    bc_error err;
    if (bc_reactor_add_fd(c->r, fd, BC_REACTOR_READ, on_client, cl, &err) != BC_OK) {
        log_errorx("control: %s", err.text);
        close(fd);
        free(cl);
        return;
    }
    cl->next = c->clients;
    if (c->clients != NULL)
        c->clients->prev = cl;
    c->clients = cl;
    c->nclients++;
}

static void on_listen(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    bc_control *c = userdata;
    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("control: accept on '%s' failed", c->path);
            return;
        }
        if (bc_fd_set_nonblock_cloexec(cfd) != BC_OK) {
            log_warn("control: cannot configure a client socket");
            close(cfd);
            continue;
        }
        add_client(c, cfd);
    }
}

/* ---- the listening socket ---- */

/* Removes a stale socket file; refuses a live one or a non-socket. */
static bc_status clear_stale(const char *path, const struct sockaddr_un *addr, bc_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return bc_fail(err, BC_ERR_EXISTS, "'%s' exists and is not a socket", path);
    int probe = socket(AF_UNIX, SOCK_STREAM, 0);
    if (probe < 0 || bc_fd_set_nonblock_cloexec(probe) != BC_OK) {
        int saved = errno;
        if (probe >= 0)
            close(probe);
        return bc_fail(err, BC_ERR_IO, "cannot create a socket: %s", strerror(saved));
    }
    /* Non-blocking: a live listener with a full backlog says EAGAIN. */
    int c = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));
    int live = c == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(probe);
    if (live)
        return bc_fail(err, BC_ERR_EXISTS, "another process is listening on '%s'", path);
    if (unlink(path) != 0 && errno != ENOENT)
        return bc_fail(err, BC_ERR_IO, "cannot remove the stale socket '%s': %s", path,
                       strerror(errno));
    return BC_OK;
}

bc_status bc_control_open(bc_reactor *r, const char *path, bc_control_handler handler,
                          void *userdata, bc_control **out, bc_error *err)
{
    *out = NULL;
    if (path == NULL || handler == NULL)
        return bc_fail(err, BC_ERR_INVAL, "control: no socket path or no handler");
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) == 0 || strlen(path) >= sizeof(addr.sun_path))
        return bc_fail(err, BC_ERR_TOO_BIG,
                       "control socket path '%s' is empty or too long "
                       "(at most %zu bytes)",
                       path, sizeof(addr.sun_path) - 1);
    memcpy(addr.sun_path, path, strlen(path));

    bc_status rc = clear_stale(path, &addr, err);
    if (rc != BC_OK)
        return rc;
    bc_control *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "control: no memory");
    c->r = r;
    c->handler = handler;
    c->userdata = userdata;
    c->listen_fd = -1;
    snprintf(c->path, sizeof(c->path), "%s", path);
    bool bound = false;
    int saved = 0;

    c->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c->listen_fd < 0 || bc_fd_set_nonblock_cloexec(c->listen_fd) != BC_OK) {
        rc = bc_fail(err, BC_ERR_IO, "control: cannot create a socket: %s", strerror(errno));
        goto cleanup;
    }
    /* The umask makes the socket 0600 from its first moment; chmod makes
     * sure of it whatever the umask allowed. */
    mode_t old_mask = umask(0177);
    int b = bind(c->listen_fd, (const struct sockaddr *)&addr, sizeof(addr));
    saved = errno;
    umask(old_mask);
    if (b != 0) {
        errno = saved;
        rc = bc_fail(err, BC_ERR_IO, "control: cannot bind '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    bound = true;
    struct stat st;
    if (chmod(path, 0600) != 0 || stat(path, &st) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "control: cannot set the mode of '%s': %s", path,
                     strerror(errno));
        goto cleanup;
    }
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    if (listen(c->listen_fd, 16) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "control: cannot listen on '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    rc = bc_reactor_add_fd(r, c->listen_fd, BC_REACTOR_READ, on_listen, c, err);

cleanup:
    if (rc != BC_OK) {
        saved = errno;
        if (c->listen_fd >= 0)
            close(c->listen_fd);
        if (bound)
            unlink(path);
        free(c);
        errno = saved;
        return rc;
    }
    *out = c;
    return BC_OK;
}

size_t bc_control_client_count(const bc_control *c)
{
    return c->nclients;
}

void bc_control_close(bc_control *c)
{
    if (c == NULL)
        return;
    while (c->clients != NULL)
        client_free(c->clients);
    bc_reactor_remove_fd(c->r, c->listen_fd);
    close(c->listen_fd);
    /* Remove the file only if it is still ours (not a successor's). */
    struct stat st;
    if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    free(c);
}
