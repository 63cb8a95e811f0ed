/* Determinism under every OpenBLAS kernel. OpenBLAS picks its SGEMM kernels at load time from
   the CPU or from $OPENBLAS_CORETYPE, and each kernel sums a GEMM column in its own order (the
   Haswell one even by the column's place in the call), so "the same bits whatever the batch
   size and thread count" must hold under each of them: a user's environment may set any, and
   OpenBLAS picks Haswell itself on every AVX2-only CPU. A test binary calls
   test_under_each_kernel(argv, "--determinism") after running its determinism cases in the
   environment it was given: that re-runs the binary with that flag once per other kernel the
   CPU can run, with OPENBLAS_CORETYPE set for the child only, and reports each of the child's
   checks as "[kernel] name". The child's main runs only its determinism cases when argv[1] is
   the flag. */
#ifndef TEST_KERNELS_H
#define TEST_KERNELS_H
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"
#include "test.h"

/* OPENBLAS_CORETYPE values this CPU runs, one per family of SGEMM kernels: Prescott (SSE3, the
   generic x86-64 kernels), Sandybridge (AVX), Haswell and Zen (AVX2), SkylakeX and Cooperlake
   (AVX-512). */
static int test_blas_kernels(const char **list, int max)
{
    int avx512, avx2, n = 0;
    nn_cpu_features(&avx512, &avx2);
    __builtin_cpu_init();
    const char *all[] = { "Prescott", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake" };
    int ok[] = { 1, __builtin_cpu_supports("avx"), avx2, avx2, avx512,
                 avx512 && __builtin_cpu_supports("avx512bf16") };
    for (int i = 0; i < 6 && n < max; i++)
        if (ok[i])
            list[n++] = all[i];
    return n;
}

/* In the child: the kernel OpenBLAS runs, for the parent to check. */
static void test_kernel_banner(void)
{
    printf("# kernel %s\n", nn_blas_corename());
}

static void test_under_each_kernel(char **argv, const char *flag)
{
    const char *ks[8];
    int n = test_blas_kernels(ks, 8);
    for (int i = 0; i < n; i++) {
        int fd[2], status = 0, seen = 0, checks = 0;
        char line[1024];
        if (pipe(fd) == -1) {
            CHECK(0, "[%s] pipe", ks[i]);
            return;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = { argv[0], (char *)flag, NULL };
            dup2(fd[1], 1);
            close(fd[0]);
            close(fd[1]);
            setenv("OPENBLAS_CORETYPE", ks[i], 1);
            execv("/proc/self/exe", args);
            _exit(127);
        }
        close(fd[1]);
        FILE *f = fdopen(fd[0], "r");
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            const char *name = strstr(line, " - ");
            if (strncmp(line, "# kernel ", 9) == 0)
                seen = strcmp(line + 9, ks[i]) == 0;
            else if ((strncmp(line, "ok ", 3) == 0 || strncmp(line, "not ok ", 7) == 0) && name) {
                CHECK(line[0] == 'o', "[%s] %s", ks[i], name + 3);
                checks++;
            } else if (line[0] == '#')
                printf("%s\n", line);
        }
        if (f != NULL)
            fclose(f);
        waitpid(pid, &status, 0);
        CHECK(seen, "[%s] OpenBLAS runs the %s kernel when asked", ks[i], ks[i]);
        CHECK(checks > 0 && WIFEXITED(status), "[%s] determinism cases ran (%d checks)", ks[i],
              checks);
    }
}
#endif
