/* imapsweepd: command line. */
#include <getopt.h>
#include <locale.h>
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
usage(FILE *f)
{
    fprintf(f,
            "usage: imapsweepd [-c FILE] [--check-config] [--once] "
            "[--dry-run]\n"
            "                  [--log-level LEVEL] [--version] [--help]\n"
            "\n"
            "  -c, --config FILE   configuration (default %s)\n"
            "      --check-config  validate the configuration and exit\n"
            "      --once          sweep every watched mailbox once, log "
            "out, exit\n"
            "      --dry-run       act on nothing; log what would be done\n"
            "      --log-level L   error, warning, notice, info, debug or "
            "trace\n"
            "      --version       print the version\n"
            "  -h, --help          this text\n",
            CTL_DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_ONCE, OPT_DRY, OPT_LEVEL, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"once", no_argument, NULL, OPT_ONCE},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon_opts opts = {.config_path = CTL_DEFAULT_CONFIG};
    bool check = false;
    int c, ret;

    /* before any secret is read: the configuration may hold one */
    ret = daemon_protect_secrets();

    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case OPT_CHECK:
            check = true;
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
                return CTL_EXIT_USAGE;
            }
            opts.level_set = true;
            break;
        case OPT_VERSION:
            printf("imapsweepd %s\n", IMAPSWEEP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imapsweepd: unexpected argument \"%s\"\n",
                argv[optind]);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (check && opts.once) {
        fprintf(stderr, "imapsweepd: --check-config and --once exclude "
                        "each other\n");
        return CTL_EXIT_USAGE;
    }
    /* POSIX regexes match UTF-8 text: case folding needs a UTF-8 locale */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        setlocale(LC_CTYPE, "");
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
    if (ret < 0)
        log_warning("cannot keep secrets out of core dumps: %s",
                    strerror(-ret));
    if (opts.level_set)
        log_set_level(opts.level);
    if (check)
        return daemon_check_config(opts.config_path);
    if (log_to_journal() && !opts.once && notify_journal_available())
        log_set_sink(notify_journal_sink, NULL);
    return daemon_run(&opts);
}
