/*
 * recipe.h - experiment recipes: the JSON files that mmt-train reads.
 *
 * One static table lists every key a recipe may hold (its path such as
 * "train.lr", type, default, range or allowed values, and meaning). It is
 * the single source of truth: loading validates against it, the getters
 * index it, recipe_to_json walks it, and docs/RECIPES.md is written from it.
 *
 * Loading a recipe, in order of increasing priority:
 *   1. the table's defaults;
 *   2. the model preset named by "model.preset" (models/NAME.json), whose
 *      keys are the defaults of the model.* keys;
 *   3. the files of the "extends" chain, base first: objects are merged
 *      key by key, the extending file wins, lists are replaced whole;
 *   4. the --set key=value overrides, in the order given.
 * Every file is checked as it is read, so a message names the file where a
 * bad key was written and the key's full path.
 */
#ifndef MMT_RECIPE_H
#define MMT_RECIPE_H

#include <stdio.h>

#include "common.h"
#include "model.h"

/* ---------------------------------------------------------- key table */

typedef enum {
    RECIPE_INT,
    RECIPE_FLOAT,
    RECIPE_BOOL,
    RECIPE_STRING,
    RECIPE_STRINGS, /* a list of strings */
    RECIPE_FLOATS,  /* a list of numbers */
} recipe_type;

typedef struct {
    const char *key;     /* full path, "train.lr" */
    recipe_type type;
    const char *def;     /* the default, as JSON text */
    double min, max;     /* numbers and number lists: the inclusive range */
    const char *choices; /* strings and string lists: "bpe|unigram"; NULL = any */
    int len;             /* lists: the required length; 0 = any */
    const char *meaning; /* one line, for docs/RECIPES.md */
} recipe_key;

/* The table: recipe_num_keys() entries, in the order recipes print. */
int recipe_num_keys(void);
const recipe_key *recipe_key_at(int i);
/* The entry for a full key path, or NULL when the table has no such key. */
const recipe_key *recipe_find_key(const char *key);

/* ---------------------------------------------------------- loading */

typedef struct recipe recipe;

/* Reads the recipe at path, follows its "extends" chain, applies the
 * nsets overrides in sets ("a.b.c=value"; the value is read as JSON when
 * it parses as JSON, else as a plain string), resolves the model preset,
 * fills defaults and validates every key. Relative "extends" paths and
 * preset paths ending in .json are taken relative to the file naming them;
 * a preset NAME is models/NAME.json in the first folder holding models/
 * found by walking up from that file. Data paths are left as written.
 * Unset "name" becomes the recipe file's name without .json, and unset
 * "output" becomes runs/NAME.
 * Returns a recipe the caller owns (release with recipe_free), or NULL
 * with st naming the file, the key path, what was expected and found. */
recipe *recipe_load(const char *path, const char *const *sets, int nsets, mmt_status *st);
void recipe_free(recipe *r);

/* The path recipe_load was given. */
const char *recipe_path(const recipe *r);

/* ---------------------------------------------------------- getters */

/* Each reads a resolved value. Asking for a key the table lacks, or with
 * the getter of another type, is a bug (MMT_ASSERT). Strings stay owned
 * by the recipe. */
int recipe_get_int(const recipe *r, const char *key);
double recipe_get_float(const recipe *r, const char *key);
int recipe_get_bool(const recipe *r, const char *key);
const char *recipe_get_string(const recipe *r, const char *key);
/* Lists (RECIPE_STRINGS or RECIPE_FLOATS): the length, then element i. */
int recipe_get_list_len(const recipe *r, const char *key);
const char *recipe_get_list_string(const recipe *r, const char *key, int i);
double recipe_get_list_float(const recipe *r, const char *key, int i);

/* Builds the model configuration: model_config_default(), then the
 * resolved model.* keys (the preset's, overridden by the recipe's) through
 * model_config_apply; model.penal.enabled false forces tau to 0, and the
 * top-level seed becomes cfg->seed. The vocabulary size V is left for the
 * caller, who knows the tokenizer. Returns MMT_OK or MMT_ERR with st. */
int recipe_model_config(const recipe *r, model_config *cfg, mmt_status *st);

/* ---------------------------------------------------------- output */

/* The resolved recipe as pretty JSON, keys in table order ("extends" is
 * consumed and left out); loading it again gives the same recipe. The
 * caller frees the string. */
char *recipe_to_json(const recipe *r);

/* Writes docs/RECIPES.md: how recipes work, then one Markdown table per
 * section listing every key with its type, default, allowed values and
 * meaning. Returns MMT_OK, or MMT_ERR when writing failed. */
int recipe_write_docs(FILE *f);

#endif
