/* mmt-average: average the parameters of several checkpoints of one model. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"

static const char usage[] =
    "usage: mmt-average -o OUT.safetensors CKPT [CKPT ...]\n"
    "\n"
    "Writes a checkpoint whose parameters are the means of the given checkpoints'\n"
    "(all of one model); configuration, tokenizer and recipe come from the first.\n"
    "Averaging the last epochs' checkpoints is how Multi30k results are usually reported.\n";

int main(int argc, char **argv) {
    const char *out = NULL;
    const char **in = mmt_calloc(argc, sizeof *in);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("mmt-average %s\n", MMT_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mmt-average: unknown option %s (see --help)\n", argv[i]);
            return 2;
        } else {
            in[n++] = argv[i];
        }
    }
    if (!out || n == 0) {
        fputs(usage, stderr);
        return 2;
    }
    mmt_status st = {0};
    if (ckpt_average(in, n, out, &st)) {
        fprintf(stderr, "mmt-average: %s\n", st.msg);
        return 1;
    }
    fprintf(stderr, "mmt-average: %d checkpoints averaged into %s\n", n, out);
    return 0;
}
