/*
 * main.c - bodycamctl's entry: global options, the command tree (areas of
 * leaves, ctl.h), help at every level, and one leaf's run.
 *
 *   bodycamctl [--config FILE] [--json] [--as NAME] AREA [LEAF] ARGS...
 *   bodycamctl help [AREA [LEAF]]       bodycamctl AREA [LEAF] --help
 *
 * A leaf's options are parsed from its table (GNU getopt_long with
 * permutation, so options may follow positional arguments: "holds place
 * REF --reason klacht ..."); --json is accepted by every leaf too.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define LEAF_OPT_BASE 256
#define LEAF_OPT_JSON 'j'

static const ctl_area *const areas[] = {
    &ctl_area_devices, &ctl_area_recordings, &ctl_area_holds, &ctl_area_requests,
    &ctl_area_export,  &ctl_area_audit,      &ctl_area_keys,  &ctl_area_firmware,
};
#define AREA_COUNT (sizeof(areas) / sizeof(areas[0]))

/* ---- help ---- */

static void print_leaf_synopsis(FILE *out, const ctl_area *area, const ctl_leaf *leaf)
{
    fprintf(out, CTL_PROGRAM " %s%s%s%s%s", area->name, leaf->name ? " " : "",
            leaf->name ? leaf->name : "", leaf->synopsis[0] ? " " : "", leaf->synopsis);
}

static void print_top_help(FILE *out)
{
    fprintf(out, "usage: " CTL_PROGRAM " [--config FILE] [--json] [--as NAME] COMMAND ...\n"
                 "\n"
                 "The operators' tool for the bodycam fleet: the device registry, the vault's\n"
                 "recordings, holds, access requests (inzage), exports and its audit log, the\n"
                 "rotation of recording keys and camera identities, and firmware rollouts.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < AREA_COUNT; i++) {
        for (size_t k = 0; k < areas[i]->count; k++) {
            const ctl_leaf *leaf = &areas[i]->leaves[k];
            fprintf(out, "  ");
            print_leaf_synopsis(out, areas[i], leaf);
            fprintf(out, "\n      %s\n", leaf->summary);
        }
    }
    fprintf(out,
            "  " CTL_PROGRAM " help [COMMAND [SUBCOMMAND]]\n"
            "\n"
            "Global options:\n"
            "  --config FILE  configuration (default $" CTL_CONFIG_ENV ", else " CTL_DEFAULT_CONFIG
            ")\n"
            "  --json         one JSON document on stdout, also on failure ({\"error\": ...})\n"
            "  --as NAME      the operator acting (audited as operator:NAME; default: the\n"
            "                 configuration's operator, else $USER)\n"
            "  --help         this text; every command and subcommand has its own --help\n"
            "\n"
            "Times (T): 2026-11-28T14:00:00Z, 2026-11-28 (midnight UTC) or milliseconds.\n"
            "\n"
            "Configuration file (name = value):\n");
    ctl_print_config_reference(out);
    fprintf(out, "\n"
                 "Exit status: 0 ok, 1 runtime failure (Redis down, I/O), 2 usage or\n"
                 "configuration error, 3 refused by policy, 4 not found, 5 verification\n"
                 "failed (tampered).\n");
}

static void print_area_help(FILE *out, const ctl_area *area)
{
    fprintf(out, "%s: %s\n\n", area->name, area->summary);
    for (size_t k = 0; k < area->count; k++) {
        fprintf(out, "  ");
        print_leaf_synopsis(out, area, &area->leaves[k]);
        fprintf(out, "\n      %s\n", area->leaves[k].summary);
    }
    fprintf(out, "\nSee '" CTL_PROGRAM " help %s SUBCOMMAND' for details.\n", area->name);
}

static void print_leaf_help(FILE *out, const ctl_area *area, const ctl_leaf *leaf)
{
    fprintf(out, "usage: ");
    print_leaf_synopsis(out, area, leaf);
    fprintf(out, "\n\n%s\n", leaf->summary);
    if (leaf->help != NULL)
        fprintf(out, "\n%s", leaf->help);
    fprintf(out, "\n--json prints one JSON document on stdout. Global options (--config, --as)\n"
                 "go before the command; see '" CTL_PROGRAM " --help'.\n");
}

/* ---- the tree ---- */

static const ctl_area *find_area(const char *name)
{
    for (size_t i = 0; i < AREA_COUNT; i++) {
        if (strcmp(areas[i]->name, name) == 0)
            return areas[i];
    }
    return NULL;
}

static bool single_leaf(const ctl_area *area)
{
    return area->count == 1 && area->leaves[0].name == NULL;
}

static const ctl_leaf *find_leaf(const ctl_area *area, const char *name)
{
    for (size_t k = 0; k < area->count; k++) {
        if (area->leaves[k].name != NULL && strcmp(area->leaves[k].name, name) == 0)
            return &area->leaves[k];
    }
    return NULL;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* bodycamctl help [AREA [LEAF]] */
static int help_command(ctl *c, int argc, char **argv)
{
    if (argc == 0) {
        print_top_help(stdout);
        return CTL_EXIT_OK;
    }
    const ctl_area *area = find_area(argv[0]);
    if (area == NULL)
        return ctl_usage(c, "help: no command '%s'", argv[0]);
    if (single_leaf(area)) {
        print_leaf_help(stdout, area, &area->leaves[0]);
        return CTL_EXIT_OK;
    }
    if (argc == 1) {
        print_area_help(stdout, area);
        return CTL_EXIT_OK;
    }
    const ctl_leaf *leaf = find_leaf(area, argv[1]);
    if (leaf == NULL)
        return ctl_usage(c, "help: '%s' has no subcommand '%s'", area->name, argv[1]);
    print_leaf_help(stdout, area, leaf);
    return CTL_EXIT_OK;
}

/* ---- a leaf's arguments ---- */

static size_t build_longopts(const ctl_leaf *leaf, struct option *longopts)
{
    size_t n = 0;
    for (size_t i = 0; i < CTL_OPTS_MAX && leaf->opts[i].name != NULL; i++) {
        longopts[n] = (struct option){leaf->opts[i].name,
                                      leaf->opts[i].has_value ? required_argument : no_argument,
                                      NULL, LEAF_OPT_BASE + (int)i};
        n++;
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){"json", no_argument, NULL, LEAF_OPT_JSON};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    return n;
}

static int check_leaf_args(ctl *c, const ctl_leaf *leaf, const ctl_args *a)
{
    if (a->npos < leaf->min_pos)
        return ctl_usage(c, "missing argument(s)");
    if (leaf->max_pos >= 0 && a->npos > leaf->max_pos)
        return ctl_usage(c, "unexpected argument '%s'", a->pos[leaf->max_pos]);
    for (size_t i = 0; i < CTL_OPTS_MAX && leaf->opts[i].name != NULL; i++) {
        if (leaf->opts[i].required && !ctl_flag(a, leaf->opts[i].name))
            return ctl_usage(c, "--%s is required", leaf->opts[i].name);
    }
    return CTL_EXIT_OK;
}

/* Parses argv (argv[0] is the leaf's name) into a; *help when --help. */
static int parse_leaf(ctl *c, const ctl_leaf *leaf, int argc, char **argv, ctl_args *a, bool *help)
{
    struct option longopts[CTL_OPTS_MAX + 3];
    build_longopts(leaf, longopts);
    memset(a, 0, sizeof(*a));
    optind = 0; /* GNU: start over, argv[0] is skipped */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            *help = true;
            return CTL_EXIT_OK;
        }
        if (ch == LEAF_OPT_JSON) {
            c->json = true;
            continue;
        }
        if (ch == ':')
            return ctl_usage(c, "option '%s' needs a value", argv[optind - 1]);
        if (ch < LEAF_OPT_BASE)
            return ctl_usage(c, "unknown option '%s'", argv[optind - 1]);
        const ctl_opt *opt = &leaf->opts[ch - LEAF_OPT_BASE];
        if (!opt->repeatable && ctl_flag(a, opt->name))
            return ctl_usage(c, "--%s is given twice", opt->name);
        if (a->nset >= CTL_VALUES_MAX)
            return ctl_usage(c, "too many options");
        a->set[a->nset].name = opt->name;
        a->set[a->nset].value = opt->has_value ? optarg : "";
        a->nset++;
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return check_leaf_args(c, leaf, a);
}

/* ---- main ---- */

static int parse_global(ctl *c, int argc, char **argv, int *next)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"as", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            c->config_path = optarg;
            break;
        case 'j':
            c->json = true;
            break;
        case 'a':
            c->as = optarg;
            break;
        case 'h':
            print_top_help(stdout);
            exit(CTL_EXIT_OK);
        case ':':
            return ctl_usage(c, "option '%s' needs a value", argv[optind - 1]);
        default:
            return ctl_usage(c, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ctl_usage(c, "no command given");
    *next = optind;
    return CTL_EXIT_OK;
}

/* Finds the leaf named by argv (argv[0] the area); *leaf_argv gets the
 * leaf's own argv. Returns an exit code; *done when help was printed. */
static int select_leaf(ctl *c, int argc, char **argv, const ctl_area **area_out,
                       const ctl_leaf **leaf_out, int *leaf_index, bool *done)
{
    const ctl_area *area = find_area(argv[0]);
    if (area == NULL)
        return ctl_usage(c, "unknown command '%s'", argv[0]);
    *area_out = area;
    if (single_leaf(area)) {
        *leaf_out = &area->leaves[0];
        *leaf_index = 0;
        return CTL_EXIT_OK;
    }
    if (argc < 2) {
        snprintf(c->what, sizeof(c->what), "%s", area->name);
        return ctl_usage(c, "which one? (%s)", area->summary);
    }
    if (is_help(argv[1])) {
        print_area_help(stdout, area);
        *done = true;
        return CTL_EXIT_OK;
    }
    const ctl_leaf *leaf = find_leaf(area, argv[1]);
    if (leaf == NULL) {
        snprintf(c->what, sizeof(c->what), "%s", area->name);
        return ctl_usage(c, "unknown subcommand '%s'", argv[1]);
    }
    *leaf_out = leaf;
    *leaf_index = 1;
    return CTL_EXIT_OK;
}

static int run(ctl *c, int argc, char **argv)
{
    int next = 0;
    int code = parse_global(c, argc, argv, &next);
    if (code != CTL_EXIT_OK)
        return code;
    if (strcmp(argv[next], "help") == 0)
        return help_command(c, argc - next - 1, argv + next + 1);
    const ctl_area *area = NULL;
    const ctl_leaf *leaf = NULL;
    int index = 0;
    bool done = false, help = false;
    code = select_leaf(c, argc - next, argv + next, &area, &leaf, &index, &done);
    if (code != CTL_EXIT_OK || done)
        return code;
    snprintf(c->what, sizeof(c->what), "%s%s%s", area->name, leaf->name ? " " : "",
             leaf->name ? leaf->name : "");
    ctl_args a;
    code = parse_leaf(c, leaf, argc - next - index, argv + next + index, &a, &help);
    if (code != CTL_EXIT_OK)
        return code;
    if (help) {
        print_leaf_help(stdout, area, leaf);
        return CTL_EXIT_OK;
    }
    code = ctl_open(c, leaf->needs);
    if (code == CTL_EXIT_OK)
        code = leaf->run(c, &a);
    return code;
}

int main(int argc, char **argv)
{
    static ctl c; /* large (paths, the Redis config): not on the stack */
    int code = run(&c, argc, argv);
    ctl_close(&c);
    if (c.json && code != CTL_EXIT_OK && !c.json_done) {
        c.exit_code = code;
        ctl_print_json_error(&c);
    }
    return code;
}
