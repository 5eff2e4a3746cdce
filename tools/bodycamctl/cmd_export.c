/*
 * cmd_export.c - bodycamctl export: decrypting held recordings into a
 * bundle for an aangifte, a klacht or an inzage (the policy and the bundle
 * are services/vault/export.h; that module audits the export or its
 * refusal).
 *
 * The progress bar goes to stderr, only when stderr is a terminal or
 * --progress asks for it, and never to stdout (which carries the one JSON
 * document with --json). It is redrawn when the whole percentage or the
 * recording changes, not per segment.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "ctl.h"
#include "vault/export.h"

#define BAR_WIDTH 30
#define MIB (1024.0 * 1024.0)

typedef struct progress_bar {
    int last_percent;
    char last_ref[BC_REF_MAX + 1];
    bool drawn;
} progress_bar;

static void draw_progress(uint64_t done, uint64_t total, const char *ref, void *userdata)
{
    progress_bar *p = userdata;
    int percent = total > 0 ? (int)(done * 100 / total) : 100;
    const char *name = ref != NULL ? ref : "done";
    if (p->drawn && percent == p->last_percent && strcmp(name, p->last_ref) == 0)
        return;
    char bar[BAR_WIDTH + 1];
    int filled = percent * BAR_WIDTH / 100;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\rexport [%s] %3d%% %8.1f / %.1f MiB  %-40.40s", bar, percent,
            (double)done / MIB, (double)total / MIB, name);
    fflush(stderr);
    p->last_percent = percent;
    snprintf(p->last_ref, sizeof(p->last_ref), "%s", name);
    p->drawn = true;
}

static int print_result(ctl *c, const bc_export_request *req, const bc_export_result *res)
{
    char path[PATH_MAX];
    const char *bundle = realpath(req->out_dir, path) != NULL ? path : req->out_dir;
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "bundle", bundle);
        cJSON_AddStringToObject(doc, "purpose", req->purpose);
        cJSON_AddStringToObject(doc, "case_ref", req->case_ref);
        cJSON_AddNumberToObject(doc, "recordings", (double)res->recordings);
        cJSON_AddNumberToObject(doc, "plaintext_bytes", (double)res->plaintext_bytes);
        cJSON_AddNumberToObject(doc, "first_audit_seq", (double)res->first_audit_seq);
        return ctl_print_json(c, doc);
    }
    printf("%s\n", bundle);
    printf("exported %zu recording%s, %llu bytes, for %s %s (audit entries #%llu..#%llu)\n",
           res->recordings, res->recordings == 1 ? "" : "s",
           (unsigned long long)res->plaintext_bytes, req->purpose, req->case_ref,
           (unsigned long long)res->first_audit_seq,
           (unsigned long long)(res->first_audit_seq + res->recordings - 1));
    printf("check it with: cd %s && sha256sum -c manifest.sha256\n", bundle);
    return CTL_EXIT_OK;
}

static int export_run(ctl *c, const ctl_args *a)
{
    const char *out = ctl_arg(a, "out");
    struct stat st;
    if (lstat(out, &st) == 0)
        return ctl_usage(c, "--out %s exists; an export makes a new directory", out);
    bc_export_request req = {.purpose = ctl_arg(a, "purpose"),
                             .case_ref = ctl_arg(a, "case"),
                             .actor = c->actor,
                             .refs = (const char *const *)a->pos,
                             .ref_count = (size_t)a->npos,
                             .out_dir = out};
    bool show = ctl_flag(a, "progress") || isatty(STDERR_FILENO);
    progress_bar bar = {.last_percent = -1};
    bc_export_result res = {0};
    bc_error err = {{0}};
    bc_status rc = bc_export_run(&c->redis, c->store, c->keys, c->audit, c->audit_dir, &req,
                                 bc_clock_now_ms(), show ? draw_progress : NULL, &bar, &res, &err);
    if (bar.drawn)
        fputc('\n', stderr);
    if (rc == BC_ERR_INVAL)
        return ctl_usage(c, "%s", err.text);
    if (rc == BC_ERR_DENIED)
        return ctl_fail(c, rc, "export refused: %s", err.text);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "export: %s", err.text);
    return print_result(c, &req, &res);
}

static const ctl_leaf leaves[] = {
    {NULL,
     "--purpose aangifte|klacht|inzage --case C --out DIR [--progress] REF...",
     "decrypt held recordings into a bundle, for a lawful purpose",
     "Every REF (<device>/<recording id>) must have an active hold of the purpose's\n"
     "reason with case reference C (for inzage: the access request's id). Otherwise\n"
     "the whole export is refused (exit 3) and the refusal is audited.\n"
     "\n"
     "DIR must not exist. The bundle is made in DIR.partial and renamed at the end:\n"
     "  DIR/media/<device>_<recording id>.bin   the decrypted recordings (mode 0600)\n"
     "  DIR/audit.jsonl      every audit entry about them, verbatim\n"
     "  DIR/export.json      purpose, case, actor, time, audit head, per recording\n"
     "  DIR/manifest.sha256  check with: sha256sum -c manifest.sha256\n"
     "A recording that fails authentication (tampered, exit 5) leaves nothing behind.\n"
     "\n"
     "The progress bar goes to stderr when it is a terminal, or always with\n"
     "--progress.\n",
     1,
     BC_EXPORT_REFS_MAX,
     {{"purpose", true, false, true},
      {"case", true, false, true},
      {"out", true, false, true},
      {"progress", false, false, false}},
     CTL_NEED_REDIS | CTL_NEED_AUDIT | CTL_NEED_STORE | CTL_NEED_KEYS,
     export_run},
};

const ctl_area ctl_area_export = {"export", "decrypt held recordings into a bundle", leaves,
                                  sizeof(leaves) / sizeof(leaves[0])};
