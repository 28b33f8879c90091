/* mmt-train: train (or resume) the model a recipe describes. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recipe.h"
#include "train.h"

static const char usage[] =
    "usage: mmt-train RECIPE.json [--set KEY=VALUE ...] [--threads N]\n"
    "\n"
    "Prepares the data (tokenizer, token cache), trains, validates with BLEU and\n"
    "writes checkpoints into the recipe's run folder (runs/NAME). Rerunning the\n"
    "same command after an interruption resumes from checkpoint_last and\n"
    "reproduces the uninterrupted run.\n"
    "\n"
    "options:\n"
    "  --set KEY=VALUE   override a recipe key, e.g. --set train.lr=0.001\n"
    "                    --set model.penal.tau=1e-4 (keys: docs/RECIPES.md)\n"
    "  --threads N       threads for OpenMP and OpenBLAS (default: the recipe's)\n"
    "  --recipe-docs     print the table of recipe keys (docs/RECIPES.md) and exit\n"
    "  --query KEY       print the resolved value of KEY (lists: one item a line)\n"
    "                    and exit, e.g. mmt-train runs/x/recipe.json --query output\n"
    "  --help, --version\n"
    "\n"
    "outputs in the run folder: recipe.json (resolved), spm.model, log.tsv (one row\n"
    "per validation), steps.tsv (one row per update), checkpoint_last, _best,\n"
    "_epochN and _avg (.safetensors)\n";

/* Print one resolved recipe value (for scripts). */
static int query(const char *path, const char *const *sets, int nsets, const char *key) {
    mmt_status st = {0};
    const recipe_key *k = recipe_find_key(key);
    if (!k) {
        fprintf(stderr, "mmt-train: --query: unknown key %s (see docs/RECIPES.md)\n", key);
        return 2;
    }
    recipe *r = recipe_load(path, sets, nsets, &st);
    if (!r) {
        fprintf(stderr, "mmt-train: %s\n", st.msg);
        return 1;
    }
    switch (k->type) {
    case RECIPE_INT: printf("%d\n", recipe_get_int(r, key)); break;
    case RECIPE_FLOAT: printf("%.17g\n", recipe_get_float(r, key)); break;
    case RECIPE_BOOL: printf("%s\n", recipe_get_bool(r, key) ? "true" : "false"); break;
    case RECIPE_STRING: printf("%s\n", recipe_get_string(r, key)); break;
    case RECIPE_STRINGS:
        for (int i = 0; i < recipe_get_list_len(r, key); i++)
            printf("%s\n", recipe_get_list_string(r, key, i));
        break;
    case RECIPE_FLOATS:
        for (int i = 0; i < recipe_get_list_len(r, key); i++)
            printf("%.17g\n", recipe_get_list_float(r, key, i));
        break;
    }
    recipe_free(r);
    return 0;
}

int main(int argc, char **argv) {
    mmt_blas_reexec(argv);
    train_args a = {0};
    const char *query_key = NULL;
    const char **sets = calloc(argc, sizeof *sets);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("mmt-train %s\n", MMT_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--recipe-docs")) {
            return recipe_write_docs(stdout) ? 1 : 0;
        } else if (!strcmp(argv[i], "--query") && i + 1 < argc) {
            query_key = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[a.nsets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[a.nsets++] = argv[i] + 6;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            a.threads = atoi(argv[++i]);
            if (a.threads < 1) {
                fprintf(stderr, "mmt-train: --threads: expected a positive integer, got %s\n",
                        argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' || a.recipe) {
            fprintf(stderr, "mmt-train: unexpected argument %s (see --help)\n", argv[i]);
            return 2;
        } else {
            a.recipe = argv[i];
        }
    }
    if (!a.recipe) {
        fputs(usage, stderr);
        return 2;
    }
    a.sets = sets;
    if (query_key) {
        int rc = query(a.recipe, sets, a.nsets, query_key);
        free(sets);
        return rc;
    }
    mmt_status st = {0};
    int rc = train_run(&a, &st);
    free(sets);
    if (rc) {
        fprintf(stderr, "mmt-train: %s\n", st.msg);
        return 1;
    }
    return 0;
}
