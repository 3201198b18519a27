/* SPDX-License-Identifier: MIT */
/* imapsweepd: command line. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"

static void
usage(FILE *f, const char *config)
{
    fprintf(f,
            "usage: imapsweepd [-c FILE] [--control-socket PATH] "
            "[--check-config] [--once]\n"
            "                  [--dry-run] [--log-level LEVEL] [--version] "
            "[--help]\n"
            "       imapsweepd [-c FILE] --explain ACCOUNT MAILBOX UID\n"
            "\n"
            "  -c, --config FILE   configuration (default %s)\n"
            "      --control-socket PATH\n"
            "                      control socket, overriding "
            "daemon.control_socket\n"
            "                      (\"\" disables it)\n"
            "      --check-config  validate the configuration and what it "
            "names (secret\n"
            "                      files, credentials), describe each rule, "
            "and exit\n"
            "      --syntax-only   with --check-config: the file alone\n"
            "      --once          sweep every watched mailbox once, log "
            "out, exit\n"
            "      --dry-run       act on nothing; log what would be done\n"
            "      --explain       which rule matches a message and why the "
            "others do\n"
            "                      not (read-only; no daemon needed)\n"
            "      --log-level L   error, warning, notice, info, debug or "
            "trace\n"
            "      --version       print the version\n"
            "  -h, --help          this text\n",
            config != NULL ? config : "none: no home directory");
}

int
main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_SYNTAX, OPT_ONCE, OPT_DRY, OPT_LEVEL,
           OPT_VERSION, OPT_SOCKET, OPT_EXPLAIN };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"control-socket", required_argument, NULL, OPT_SOCKET},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"syntax-only", no_argument, NULL, OPT_SYNTAX},
        {"explain", no_argument, NULL, OPT_EXPLAIN},
        {"once", no_argument, NULL, OPT_ONCE},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon_opts opts = {.config_path = NULL};
    char *dflt_err = NULL;
    /* for root the system's, for a user their own (XDG) */
    char *dflt;
    bool check = false, syntax_only = false, explain = false;
    int c, ret, protect;

    /* before any secret is read: the configuration may hold one */
    protect = daemon_protect_secrets();
    dflt = ctl_default_config(geteuid(), &dflt_err);

    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case OPT_SOCKET:
            opts.control_socket = optarg;
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_SYNTAX:
            syntax_only = true;
            break;
        case OPT_EXPLAIN:
            explain = true;
            break;
        case OPT_ONCE:
            opts.once = true;
            break;
        case OPT_DRY:
            opts.dry_run = true;
            break;
        case OPT_LEVEL:
            if (log_level_parse(optarg, &opts.level) < 0) {
                fprintf(stderr, "imapsweepd: unknown log level \"%s\"\n",
                        optarg);
                ret = CTL_EXIT_USAGE;
                goto out;
            }
            opts.level_set = true;
            break;
        case OPT_VERSION:
            printf("imapsweepd %s\n", IMAPSWEEP_VERSION);
            ret = 0;
            goto out;
        case 'h':
            usage(stdout, dflt);
            ret = 0;
            goto out;
        default:
            usage(stderr, dflt);
            ret = CTL_EXIT_USAGE;
            goto out;
        }
    }
    if (explain && (argc - optind != 3 || check || opts.once)) {
        fprintf(stderr, "imapsweepd: --explain takes ACCOUNT MAILBOX UID "
                        "(and not --check-config or --once)\n");
        usage(stderr, dflt);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    if (!explain && optind < argc) {
        fprintf(stderr, "imapsweepd: unexpected argument \"%s\"\n",
                argv[optind]);
        usage(stderr, dflt);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    if (check && opts.once) {
        fprintf(stderr, "imapsweepd: --check-config and --once exclude "
                        "each other\n");
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    if (opts.config_path == NULL) {
        if (dflt == NULL) {
            fprintf(stderr, "imapsweepd: %s\n", dflt_err);
            ret = CTL_EXIT_CONFIG;
            goto out;
        }
        opts.config_path = dflt;
    }
    if (syntax_only && !check) {
        fprintf(stderr, "imapsweepd: --syntax-only goes with "
                        "--check-config\n");
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    /* a peer that vanishes must not kill the process mid-write */
    signal(SIGPIPE, SIG_IGN);
    /* a parent may have blocked signals; SIGHUP/SIGTERM must get through */
    {
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    log_init();
    if (protect < 0)
        log_warning("cannot keep secrets out of core dumps: %s",
                    strerror(-protect));
    if (opts.level_set)
        log_set_level(opts.level);
    if (check) {
        ret = daemon_check_config(opts.config_path, !syntax_only);
        goto out;
    }
    if (explain) {
        ret = daemon_explain(&opts, argv[optind], argv[optind + 1],
                             argv[optind + 2]);
        goto out;
    }
    if (log_to_journal() && !opts.once && notify_journal_available())
        log_set_sink(notify_journal_sink, NULL);
    ret = daemon_run(&opts);
out:
    free(dflt);
    free(dflt_err);
    return ret;
}
