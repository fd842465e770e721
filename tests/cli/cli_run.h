/*
 * Shared by the command-line tests (test_cli.c, test_cli_tokenize.c): the
 * kvlab program run as a child process, standard input read from a file,
 * standard output and error captured in files.  Header-only (static
 * functions and state) because tests/CMakeLists.txt links one .c per test.
 *
 * The test's main sets g_bin (from $KVL_KVLAB_BIN, which ctest sets) and
 * the two capture files g_out_path / g_err_path.
 */
#ifndef KVL_TEST_CLI_RUN_H
#define KVL_TEST_CLI_RUN_H

#include "test_util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 40

typedef struct run_result {
    int status; /* exit code, or -1 when killed by a signal */
    char *out;
    size_t out_len;
    char *err;
} run_result;

static const char *g_bin;
static char g_out_path[256], g_err_path[256];

/* The whole file as a malloc'ed NUL-terminated string ("" when it cannot
 * be read); *len (if given) receives its length. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    char *s = NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        s = malloc((size_t)(sz > 0 ? sz : 0) + 1);
        n = s ? fread(s, 1, (size_t)(sz > 0 ? sz : 0), f) : 0;
        fclose(f);
    }
    if (!s)
        s = calloc(1, 1);
    if (s)
        s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static void redirect(int fd, const char *path, int flags)
{
    int f = open(path, flags, 0600);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(126);
    close(f);
}

/* Runs g_bin with the NULL-terminated arguments in ap (at most MAX_ARGS)
 * and standard input from in_path; `env` ("NAME=VALUE" or NULL) is set in
 * the child, where KVLAB_MODEL is otherwise unset. */
static run_result run_args(const char *env, const char *in_path, va_list ap)
{
    char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)g_bin;
    const char *a;
    while (n < MAX_ARGS && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    run_result r = {-1, NULL, 0, NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        redirect(0, in_path, O_RDONLY);
        redirect(1, g_out_path, O_WRONLY | O_CREAT | O_TRUNC);
        redirect(2, g_err_path, O_WRONLY | O_CREAT | O_TRUNC);
        unsetenv("KVLAB_MODEL");
        if (env)
            putenv((char *)env);
        execv(g_bin, argv);
        _exit(127);
    }
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
        r.status = WEXITSTATUS(st);
    r.out = slurp(g_out_path, &r.out_len);
    r.err = slurp(g_err_path, NULL);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Checks the exit status; prints the child's stderr when it differs. */
#define EXPECT_STATUS(r, want, what)                                         \
    CHECK((r).status == (want), "%s: exit %d, want %d; stderr: %s", what,   \
          (r).status, want, (r).err)

#endif
