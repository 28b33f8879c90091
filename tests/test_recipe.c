/*
 * test_recipe.c - recipes: defaults, extends chains (override, lists,
 * cycles), --set, the message of each kind of bad input, model presets,
 * penal.enabled, the resolved JSON, every shipped recipe, and that
 * docs/RECIPES.md is what the key table writes.
 */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recipe.h"
#include "test.h"

static char dir[64];

/* dir/name, in a static buffer per slot */
static const char *scratch(const char *name) {
    static char buf[8][192];
    static int slot;
    char *p = buf[slot++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Writes text to dir/name (its folder must exist); returns the path. */
static const char *put(const char *name, const char *text) {
    const char *path = scratch(name);
    FILE *f = mmt_fopen(path, "w");
    mmt_fwrite(text, 1, strlen(text), f, path);
    mmt_fclose(f, path);
    return path;
}

/* Loads a recipe expected to fail and returns its message (a static copy). */
static const char *load_error(const char *path, const char *const *sets, int nsets) {
    static char msg[1024];
    mmt_status st = {0};
    recipe *r = recipe_load(path, sets, nsets, &st);
    recipe_free(r);
    snprintf(msg, sizeof msg, "%s", r ? "(loaded without error)" : st.msg);
    return msg;
}

/* Checks that loading path fails with exactly want (after "PATH: "). */
static void check_error(const char *what, const char *path, const char *const *sets, int nsets,
                        const char *want) {
    char full[1024];
    snprintf(full, sizeof full, "%s: %s", path, want);
    const char *got = load_error(path, sets, nsets);
    CHECK(!strcmp(got, full), "recipe: %s: %s", what, got);
}

static void check_contains(const char *what, const char *msg, const char *part) {
    CHECK(strstr(msg, part) != NULL, "recipe: %s: \"%s\" names %s", what, msg, part);
}

#define DEMO "\"data\": {\"generate\": \"demo\"}"

/* ------------------------------------------------------------ defaults */

static void defaults(void) {
    const char *path = put("plain.json", "{" DEMO "}");
    mmt_status st = {0};
    recipe *r = recipe_load(path, NULL, 0, &st);
    CHECK(r != NULL, "recipe: a recipe with only data.generate loads %s", st.msg);
    if (!r) return;
    CHECK(recipe_get_int(r, "train.max_tokens") == 4096 &&
              recipe_get_float(r, "train.lr") == 0.005 &&
              recipe_get_int(r, "train.warmup_updates") == 2000 &&
              !strcmp(recipe_get_string(r, "tokenizer.type"), "bpe") &&
              recipe_get_list_len(r, "train.adam_betas") == 2 &&
              recipe_get_list_float(r, "train.adam_betas", 1) == 0.98 &&
              recipe_get_list_len(r, "model.penal.sublayers") == 5 &&
              !strcmp(recipe_get_list_string(r, "model.penal.sublayers", 3), "dec_cross"),
          "recipe: defaults filled from the table");
    CHECK(!strcmp(recipe_get_string(r, "name"), "plain") &&
              !strcmp(recipe_get_string(r, "output"), "runs/plain"),
          "recipe: name from the file name, output runs/NAME (%s, %s)",
          recipe_get_string(r, "name"), recipe_get_string(r, "output"));

    // the table's model defaults are model_config_default()
    model_config got, want = model_config_default();
    CHECK(recipe_model_config(r, &got, &st) == MMT_OK, "recipe: model config %s", st.msg);
    CHECK(got.enc_layers == want.enc_layers && got.dec_layers == want.dec_layers &&
              got.D == want.D && got.F == want.F && got.H == want.H &&
              got.max_positions == want.max_positions && got.pre_norm == want.pre_norm &&
              got.dropout == want.dropout && got.attn_dropout == want.attn_dropout &&
              got.act_dropout == want.act_dropout &&
              got.label_smoothing == want.label_smoothing && got.tau == want.tau &&
              got.penal_mask == want.penal_mask &&
              got.penal_before_dropout == want.penal_before_dropout,
          "recipe: the table's model defaults equal model_config_default()");
    recipe_free(r);
}

/* ------------------------------------------------------------- extends */

static void extends(void) {
    mkdir(scratch("sub"), 0755);
    put("base.json", "{" DEMO ", \"train\": {\"lr\": 0.001, \"max_tokens\": 1000},\n"
                     " \"model\": {\"penal\": {\"sublayers\": [\"enc_self\", \"dec_ffn\"]}}}");
    put("mid.json", "{\"extends\": \"base.json\", \"train\": {\"max_tokens\": 2000},\n"
                    " \"decode\": {\"beam\": 3}, \"model\": {\"penal\": {\"tau\": 0.5}}}");
    const char *top = put("sub/top.json", "{\"extends\": \"../mid.json\",\n"
                                          " \"model\": {\"penal\": {\"sublayers\": [\"enc_ffn\"]}},"
                                          " \"train\": {\"update_freq\": 4}}");
    mmt_status st = {0};
    recipe *r = recipe_load(top, NULL, 0, &st);
    CHECK(r != NULL, "recipe: a chain of three files loads %s", st.msg);
    if (r) {
        CHECK(recipe_get_float(r, "train.lr") == 0.001, "recipe: extends: the base's key stays");
        CHECK(recipe_get_int(r, "train.max_tokens") == 2000,
              "recipe: extends: the extending file wins (max_tokens %d)",
              recipe_get_int(r, "train.max_tokens"));
        CHECK(recipe_get_int(r, "train.update_freq") == 4 && recipe_get_int(r, "decode.beam") == 3,
              "recipe: extends: keys of every file of the chain");
        CHECK(recipe_get_float(r, "model.penal.tau") == 0.5 &&
                  !strcmp(recipe_get_string(r, "data.generate"), "demo"),
              "recipe: extends: nested objects merge key by key");
        CHECK(recipe_get_list_len(r, "model.penal.sublayers") == 1 &&
                  !strcmp(recipe_get_list_string(r, "model.penal.sublayers", 0), "enc_ffn"),
              "recipe: extends: a list is replaced whole");
        CHECK(!strcmp(recipe_get_string(r, "name"), "top"),
              "recipe: extends: name of the top file");
        recipe_free(r);
    }

    // cycles, through two files and onto itself
    const char *a = put("a.json", "{\"extends\": \"b.json\"}");
    put("b.json", "{\"extends\": \"a.json\"}");
    const char *msg = load_error(a, NULL, 0);
    check_contains("a cycle of two files", msg, "cycle");
    check_contains("a cycle of two files", msg, "a.json -> ");
    check_contains("a cycle of two files", msg, "b.json -> ");
    const char *self = put("self.json", "{\"extends\": \"self.json\"}");
    check_contains("a file extending itself", load_error(self, NULL, 0), "cycle");

    const char *missing = put("missing.json", "{\"extends\": \"nowhere.json\"}");
    char want[256];
    snprintf(want, sizeof want, "%s: \"extends\": cannot open", missing);
    check_contains("a missing base", load_error(missing, NULL, 0), want);

    // an error in the base names the base, not the recipe given
    const char *bad_base = put("badbase.json", "{\"train\": {\"lr\": \"fast\"}}");
    const char *child = put("child.json", "{\"extends\": \"badbase.json\"}");
    char base_msg[256];
    snprintf(base_msg, sizeof base_msg, "%s: \"train.lr\": expected a number, got \"fast\"",
             bad_base);
    const char *got = load_error(child, NULL, 0);
    CHECK(!strcmp(got, base_msg), "recipe: an error in a base file names it: %s", got);
}

/* ----------------------------------------------------------------- --set */

static void sets(void) {
    const char *path = put("set.json", "{" DEMO ", \"model\": {\"penal\": {\"tau\": 0.001}}}");
    const char *ok[] = {
        "train.lr=0.01",          "train.max_tokens=1234",       "model.penal.enabled=true",
        "train.adam_betas=[0.8, 0.9]", "data.test.names=[\"a\"]", "data.test.src=[\"a.en\"]",
        "data.test.tgt=[\"a.de\"]", "name=run2",                  "data.src_lang=123",
        "data.tgt_lang=\"de\"",   "train.update_freq=2",         "train.update_freq=3",
        "train.weight_decay=.5",
    };
    mmt_status st = {0};
    recipe *r = recipe_load(path, ok, (int)(sizeof ok / sizeof ok[0]), &st);
    CHECK(r != NULL, "recipe: --set of every type loads %s", st.msg);
    if (r) {
        CHECK(recipe_get_float(r, "train.lr") == 0.01, "recipe: --set a float");
        CHECK(recipe_get_int(r, "train.max_tokens") == 1234, "recipe: --set an int");
        CHECK(recipe_get_bool(r, "model.penal.enabled"), "recipe: --set a bool");
        CHECK(recipe_get_list_float(r, "train.adam_betas", 0) == 0.8 &&
                  recipe_get_list_float(r, "train.adam_betas", 1) == 0.9,
              "recipe: --set a float list");
        CHECK(recipe_get_list_len(r, "data.test.names") == 1 &&
                  !strcmp(recipe_get_list_string(r, "data.test.names", 0), "a"),
              "recipe: --set a string list");
        CHECK(!strcmp(recipe_get_string(r, "name"), "run2") &&
                  !strcmp(recipe_get_string(r, "output"), "runs/run2"),
              "recipe: --set a plain string (and output follows the name)");
        CHECK(!strcmp(recipe_get_string(r, "data.src_lang"), "123") &&
                  !strcmp(recipe_get_string(r, "data.tgt_lang"), "de"),
              "recipe: --set a string key: a number as written, a JSON string unquoted");
        CHECK(recipe_get_int(r, "train.update_freq") == 3, "recipe: --set: the last one wins");
        CHECK(recipe_get_float(r, "train.weight_decay") == 0.5,
              "recipe: --set a number JSON does not read (.5)");
        recipe_free(r);
    }

    const char *unknown[] = {"train.lrr=1"};
    const char *got = load_error(path, unknown, 1);
    CHECK(!strcmp(got, "--set: unknown key \"train.lrr\" (did you mean \"train.lr\"?)"),
          "recipe: --set an unknown key suggests the nearest: %s", got);
    const char *moved[] = {"train.beam=4"};
    got = load_error(path, moved, 1);
    CHECK(!strcmp(got, "--set: unknown key \"train.beam\" (did you mean \"decode.beam\"?)"),
          "recipe: --set a key in the wrong section suggests its section: %s", got);
    const char *far[] = {"zzzzzzzzzzzz=1"};
    got = load_error(path, far, 1);
    CHECK(!strcmp(got, "--set: unknown key \"zzzzzzzzzzzz\""),
          "recipe: --set a key near nothing suggests nothing: %s", got);
    const char *type[] = {"train.max_tokens=4k"};
    got = load_error(path, type, 1);
    CHECK(!strcmp(got, "--set: \"train.max_tokens\": expected an integer, got \"4k\""),
          "recipe: --set the wrong type: %s", got);
    const char *range[] = {"train.max_tokens=0"};
    got = load_error(path, range, 1);
    CHECK(!strcmp(got, "--set: \"train.max_tokens\": expected 1..1000000, got 0"),
          "recipe: --set out of range: %s", got);
    const char *boolean[] = {"model.penal.enabled=yes"};
    got = load_error(path, boolean, 1);
    CHECK(!strcmp(got, "--set: \"model.penal.enabled\": expected true or false, got \"yes\""),
          "recipe: --set a bool to a word: %s", got);
    const char *noeq[] = {"train.lr"};
    got = load_error(path, noeq, 1);
    CHECK(!strcmp(got, "--set train.lr: expected key=value"), "recipe: --set without '=': %s",
          got);
    const char *ext[] = {"extends=x.json"};
    check_contains("--set extends", load_error(path, ext, 1), "\"extends\"");
}

/* ------------------------------------------------------- bad input messages */

static void bad_input(void) {
    const char *p;
    p = put("unknown.json", "{" DEMO ", \"train\": {\"lrr\": 1}}");
    check_error("an unknown key", p, NULL, 0,
                "unknown key \"train.lrr\" (did you mean \"train.lr\"?)");
    p = put("unknown-section.json", "{" DEMO ", \"trian\": {\"lr\": 1}}");
    check_error("an unknown section", p, NULL, 0,
                "unknown key \"trian.lr\" (did you mean \"train.lr\"?)");
    p = put("unknown-top.json", "{" DEMO ", \"max_tokens\": 100}");
    check_error("a key outside its section", p, NULL, 0,
                "unknown key \"max_tokens\" (did you mean \"train.max_tokens\"?)");
    p = put("type.json", "{" DEMO ", \"train\": {\"max_tokens\": \"4k\"}}");
    check_error("a wrong type", p, NULL, 0,
                "\"train.max_tokens\": expected an integer, got \"4k\"");
    p = put("fraction.json", "{" DEMO ", \"train\": {\"max_tokens\": 4.5}}");
    check_error("a fraction for an int", p, NULL, 0,
                "\"train.max_tokens\": expected an integer, got 4.5");
    p = put("range.json", "{" DEMO ", \"train\": {\"max_tokens\": 0}}");
    check_error("out of range", p, NULL, 0, "\"train.max_tokens\": expected 1..1000000, got 0");
    p = put("frange.json", "{" DEMO ", \"model\": {\"dropout\": 1.5}}");
    check_error("a float out of range", p, NULL, 0, "\"model.dropout\": expected 0..0.99, got 1.5");
    p = put("enum.json", "{" DEMO ", \"tokenizer\": {\"type\": \"wordpiece\"}}");
    check_error("a bad enumeration value", p, NULL, 0,
                "\"tokenizer.type\": expected one of \"bpe\", \"unigram\", got \"wordpiece\"");
    p = put("enum1.json", "{" DEMO ", \"model\": {\"activation\": \"gelu\"}}");
    check_error("a single allowed value", p, NULL, 0,
                "\"model.activation\": expected \"relu\", got \"gelu\"");
    p = put("true-only.json", "{" DEMO ", \"model\": {\"share_embeddings\": false}}");
    check_error("a bool that must be true", p, NULL, 0,
                "\"model.share_embeddings\": expected true, got false");
    p = put("list-el.json", "{" DEMO ", \"model\": {\"penal\": {\"sublayers\": [\"enc_self\", "
                            "\"encself\"]}}}");
    check_error("a bad list element", p, NULL, 0,
                "\"model.penal.sublayers\"[1]: expected one of \"enc_self\", \"enc_ffn\", "
                "\"dec_self\", \"dec_cross\", \"dec_ffn\", \"fusion\", got \"encself\"");
    p = put("fusion-no-images.json", "{" DEMO ", \"model\": {\"fusion\": \"gated\"}}");
    check_error("a fusion without images", p, NULL, 0,
                "\"data.train.images\": required when model.fusion is \"gated\"");
    p = put("images-no-fusion.json", "{\"data\": {\"generate\": \"demo\", \"train\": "
                                     "{\"images\": \"x.npy\"}}}");
    check_error("images without a fusion", p, NULL, 0,
                "\"data.train.images\": given, but model.fusion is \"none\" (set model.fusion "
                "to gated or selective, or remove the images)");
    p = put("bad-patch.json", "{\"model\": {\"fusion\": \"selective\"}, \"data\": "
                              "{\"generate\": \"demo\", \"train\": {\"images\": \"a.txt\"}, "
                              "\"valid\": {\"images\": \"b.txt\"}, \"image_size\": 20, "
                              "\"image_patch\": 8}}");
    check_error("an image size that is not a multiple of the patch", p, NULL, 0,
                "\"data.image_size\": expected a multiple of data.image_patch (8), got 20");
    p = put("bad-fusion.json", "{" DEMO ", \"model\": {\"fusion\": \"concat\"}}");
    check_error("an unknown fusion", p, NULL, 0,
                "\"model.fusion\": expected one of \"none\", \"gated\", \"selective\", got "
                "\"concat\"");
    p = put("list-len.json", "{" DEMO ", \"train\": {\"adam_betas\": [0.9]}}");
    check_error("a list of the wrong length", p, NULL, 0,
                "\"train.adam_betas\": expected a list of 2 numbers, got 1");
    p = put("list-range.json", "{" DEMO ", \"train\": {\"adam_betas\": [0.9, 1.5]}}");
    check_error("a list element out of range", p, NULL, 0,
                "\"train.adam_betas\"[1]: expected 0..0.999999, got 1.5");
    p = put("section.json", "{" DEMO ", \"train\": 5}");
    check_error("a section that is not an object", p, NULL, 0,
                "\"train\": expected an object, got 5");
    p = put("twice.json", "{" DEMO ", \"seed\": 1, \"seed\": 2}");
    check_error("a key given twice", p, NULL, 0, "\"seed\": given twice");
    p = put("name.json", "{" DEMO ", \"name\": \"a/b\"}");
    check_error("a name with a slash", p, NULL, 0,
                "\"name\": expected letters, digits, '.', '-' or '_' (not starting with '.'), "
                "got \"a/b\"");

    // invalid JSON: file:line
    p = put("broken.json", "{\n  \"seed\": 1,\n  \"threads\": 2,,\n  \"name\": \"x\"\n}\n");
    char want[256];
    snprintf(want, sizeof want, "%s:3: invalid JSON: \"threads\": 2,,", p);
    const char *got = load_error(p, NULL, 0);
    CHECK(!strcmp(got, want), "recipe: invalid JSON names file:line: %s", got);
    p = put("array.json", "[1, 2]");
    check_error("a list at the top", p, NULL, 0, "expected a JSON object ({...}) at the top");
    got = load_error(scratch("absent.json"), NULL, 0);
    check_contains("a missing recipe", got, "absent.json: cannot open");

    // rules tying keys together
    p = put("nodata.json", "{}");
    check_error("no training data", p, NULL, 0,
                "\"data.train.src\": required unless data.generate is \"demo\"");
    p = put("tests.json", "{\"data\": {\"generate\": \"demo\", \"test\": {\"names\": [\"a\", "
                          "\"b\"], \"src\": [\"a.en\", \"b.en\"], \"tgt\": [\"a.de\"]}}}");
    check_error("test lists of different lengths", p, NULL, 0,
                "\"data.test.tgt\": expected 2 files, one per data.test.names, got 1");
    p = put("heads.json", "{" DEMO ", \"model\": {\"d_model\": 100, \"heads\": 3}}");
    check_error("a width heads do not divide", p, NULL, 0,
                "\"model.d_model\": expected a multiple of model.heads (3), got 100");
    p = put("tau0.json", "{" DEMO ", \"model\": {\"penal\": {\"enabled\": true, \"tau\": 0}}}");
    check_error("penal enabled with tau 0", p, NULL, 0,
                "\"model.penal.tau\": expected more than 0 when model.penal.enabled is true, "
                "got 0");
    p = put("forever.json", "{" DEMO ", \"train\": {\"max_updates\": 0}}");
    check_contains("a run that never stops", load_error(p, NULL, 0), "would never stop");
    p = put("average.json", "{" DEMO ", \"train\": {\"keep_last\": 2, \"average_last\": 5}}");
    check_error("averaging more than is kept", p, NULL, 0,
                "\"train.average_last\": expected at most train.keep_last (2), got 5");
}

/* -------------------------------------------------------------- presets */

static void presets(void) {
    mkdir(scratch("models"), 0755);
    mkdir(scratch("recipes"), 0755);
    put("models/mini.json", "{\"description\": \"a small one\", \"encoder_layers\": 2, "
                            "\"d_model\": 64, \"heads\": 2, \"dropout\": 0.1, "
                            "\"norm\": \"pre\", \"penal\": {\"tau\": 0.25}}");
    const char *p = put("recipes/named.json",
                        "{" DEMO ", \"model\": {\"preset\": \"mini\", \"d_model\": 96}}");
    mmt_status st = {0};
    recipe *r = recipe_load(p, NULL, 0, &st);
    CHECK(r != NULL, "recipe: a preset by name, found walking up %s", st.msg);
    if (r) {
        CHECK(recipe_get_int(r, "model.encoder_layers") == 2 &&
                  recipe_get_int(r, "model.heads") == 2 &&
                  !strcmp(recipe_get_string(r, "model.norm"), "pre"),
              "recipe: preset keys are the model defaults");
        CHECK(recipe_get_int(r, "model.d_model") == 96, "recipe: the recipe overrides the preset");
        CHECK(recipe_get_int(r, "model.decoder_layers") == 4,
              "recipe: keys the preset lacks keep the table default");
        model_config cfg = {0};
        int rc = recipe_model_config(r, &cfg, &st);
        CHECK(rc == MMT_OK && cfg.enc_layers == 2 &&
                  cfg.dec_layers == 4 && cfg.D == 96 && cfg.H == 2 && cfg.pre_norm == 1 &&
                  cfg.dropout == 0.1f && cfg.tau == 0.0f,
              "recipe: model config from preset and recipe (D %d, tau %g) %s", cfg.D, cfg.tau,
              st.msg);
        recipe_free(r);
    }

    // a path, relative to the recipe; --set overriding the preset
    p = put("recipes/path.json", "{" DEMO ", \"model\": {\"preset\": \"../models/mini.json\"}}");
    const char *set[] = {"model.encoder_layers=3"};
    r = recipe_load(p, set, 1, &st);
    CHECK(r && recipe_get_int(r, "model.encoder_layers") == 3 &&
              recipe_get_int(r, "model.d_model") == 64,
          "recipe: a preset by path, with --set over it %s", r ? "" : st.msg);
    recipe_free(r);
    const char *by_set[] = {"model.preset=mini"};
    r = recipe_load(scratch("plain.json"), by_set, 1, &st);
    CHECK(r && recipe_get_int(r, "model.d_model") == 64, "recipe: a preset by --set %s",
          r ? "" : st.msg);
    recipe_free(r);

    // a missing preset lists the known ones; a bad preset key names the preset file
    p = put("recipes/nope.json", "{" DEMO ", \"model\": {\"preset\": \"nope\"}}");
    const char *got = load_error(p, NULL, 0);
    check_contains("an unknown preset", got, "\"model.preset\": no preset \"nope\"");
    check_contains("an unknown preset", got, "known: mini");
    const char *bad = put("models/bad.json", "{\"d_model\": \"wide\"}");
    p = put("recipes/bad.json", "{" DEMO ", \"model\": {\"preset\": \"bad\"}}");
    got = load_error(p, NULL, 0);
    char want[256];
    snprintf(want, sizeof want, "%s: \"model.d_model\": expected an integer, got \"wide\"", bad);
    check_contains("a bad key in a preset names the preset", got, want);
    put("models/nested.json", "{\"preset\": \"mini\"}");
    p = put("recipes/nested.json", "{" DEMO ", \"model\": {\"preset\": \"nested\"}}");
    check_contains("a preset naming a preset", load_error(p, NULL, 0),
                   "cannot name another preset");
}

/* -------------------------------------------------------- penal.enabled */

static void penal_enabled(void) {
    const char *base = put("pbase.json", "{" DEMO ", \"model\": {\"penal\": {\"enabled\": false, "
                                         "\"tau\": 3e-4}}}");
    const char *penal = put("penal.json", "{\"extends\": \"pbase.json\", "
                                          "\"model\": {\"penal\": {\"enabled\": true}}}");
    mmt_status st = {0};
    model_config cb = {0}, cp = {0};
    recipe *rb = recipe_load(base, NULL, 0, &st);
    recipe *rp = recipe_load(penal, NULL, 0, &st);
    CHECK(rb && rp && recipe_model_config(rb, &cb, &st) == MMT_OK &&
              recipe_model_config(rp, &cp, &st) == MMT_OK,
          "recipe: a penal recipe and its baseline load %s", st.msg);
    if (rb && rp) {
        CHECK(recipe_get_float(rb, "model.penal.tau") == 3e-4 && cb.tau == 0.0f,
              "recipe: penal.enabled false forces tau 0 (recipe tau %g, model tau %g)",
              recipe_get_float(rb, "model.penal.tau"), cb.tau);
        CHECK(cp.tau == 3e-4f, "recipe: penal.enabled true keeps tau (%g)", cp.tau);
    }
    recipe_free(rb);
    recipe_free(rp);

    // enabled without a tau: the reference 3e-4
    const char *bare = put("pbare.json", "{" DEMO ", \"model\": {\"penal\": {\"enabled\": "
                                         "true}}}");
    model_config cd = {0};
    recipe *rd = recipe_load(bare, NULL, 0, &st);
    int ok = rd && recipe_model_config(rd, &cd, &st) == MMT_OK;
    CHECK(ok && cd.tau == 3e-4f,
          "recipe: penal.enabled true without a tau trains with tau 3e-4 (%g) %s", cd.tau,
          ok ? "" : st.msg);
    recipe_free(rd);
}

/* ------------------------------------------------------------- to JSON */

static void to_json(void) {
    const char *path = scratch("sub/top.json");
    const char *set[] = {"train.lr=0.0007", "name=again"};
    mmt_status st = {0};
    recipe *r = recipe_load(path, set, 2, &st);
    CHECK(r != NULL, "recipe: load for the JSON round trip %s", st.msg);
    if (!r) return;
    char *text = recipe_to_json(r);
    CHECK(!strncmp(text, "{\n  \"name\": \"again\",\n  \"description\"", 36) &&
              !strstr(text, "extends") && !strchr(text, '\t'),
          "recipe: JSON in table order, two-space indent, no extends");
    const char *saved = put("saved.json", text);
    recipe *again = recipe_load(saved, NULL, 0, &st);
    char *text2 = again ? recipe_to_json(again) : NULL;
    CHECK(text2 && !strcmp(text, text2), "recipe: the resolved JSON loads back to itself %s",
          again ? "" : st.msg);
    free(text);
    free(text2);
    recipe_free(again);
    recipe_free(r);
}

/* --------------------------------------------------------- a bug asserts */

static void getter_bug(void) {
    const char *path = scratch("plain.json");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        mmt_status st = {0};
        recipe *r = recipe_load(path, NULL, 0, &st);
        if (r) recipe_get_int(r, "train.nope");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "recipe: a getter for a key not in the table asserts");
}

/* ------------------------------------------------------ shipped recipes */

/* A recipe X.json next to X-baseline.json must be the baseline with
 * model.penal.enabled true: compare their resolved JSON. */
static void check_pair(const char *penal_path, const char *base_path) {
    mmt_status st = {0};
    recipe *p = recipe_load(penal_path, NULL, 0, &st);
    recipe *b = recipe_load(base_path, NULL, 0, &st);
    if (!p || !b) {
        recipe_free(p);
        recipe_free(b);
        return; /* shipped() has reported it */
    }
    CHECK(recipe_get_bool(p, "model.penal.enabled") && !recipe_get_bool(b, "model.penal.enabled"),
          "recipe: %s has the penal connection, %s not", penal_path, base_path);

    // the baseline with that line (and the name and description) changed
    char name[300], desc[1200];
    snprintf(name, sizeof name, "name=%s", recipe_get_string(p, "name"));
    snprintf(desc, sizeof desc, "description=%s", recipe_get_string(p, "description"));
    const char *set[] = {"model.penal.enabled=true", name, desc};
    recipe *b2 = recipe_load(base_path, set, 3, &st);
    char *tp = recipe_to_json(p), *tb = b2 ? recipe_to_json(b2) : NULL;
    CHECK(tb && !strcmp(tp, tb), "recipe: %s is %s with model.penal.enabled true", penal_path,
          base_path);
    free(tp);
    free(tb);
    recipe_free(p);
    recipe_free(b);
    recipe_free(b2);
}

static void shipped(void) {
    DIR *d = opendir("recipes");
    CHECK(d != NULL, "recipe: recipes/ is readable from the repository root");
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json")) continue;
        char path[512];
        snprintf(path, sizeof path, "recipes/%s", e->d_name);
        mmt_status st = {0};
        recipe *r = recipe_load(path, NULL, 0, &st);
        model_config cfg;
        CHECK(r && recipe_model_config(r, &cfg, &st) == MMT_OK, "recipe: %s loads %s", path,
              st.msg);
        recipe_free(r);
        n++;

        // its baseline, if it has one
        if (len > 14 && !strcmp(e->d_name + len - 14, "-baseline.json")) {
            char penal[512];
            snprintf(penal, sizeof penal, "recipes/%.*s.json", (int)(len - 14), e->d_name);
            if (access(penal, F_OK) == 0) check_pair(penal, path);
        }
    }
    closedir(d);
    CHECK(n >= 7, "recipe: %d recipes shipped", n);

    // the Multi30k reference settings
    mmt_status st = {0};
    recipe *r = recipe_load("recipes/multi30k.json", NULL, 0, &st);
    model_config cfg;
    if (r && recipe_model_config(r, &cfg, &st) == MMT_OK) {
        CHECK(cfg.enc_layers == 4 && cfg.D == 128 && cfg.F == 256 && cfg.H == 4 &&
                  cfg.dropout == 0.3f && cfg.label_smoothing == 0.1f && cfg.tau == 3e-4f &&
                  recipe_get_int(r, "train.max_tokens") == 4096 &&
                  recipe_get_int(r, "train.update_freq") == 2 &&
                  recipe_get_float(r, "train.lr") == 0.005 &&
                  recipe_get_int(r, "train.warmup_updates") == 2000 &&
                  recipe_get_int(r, "train.max_updates") == 8000 &&
                  recipe_get_int(r, "train.patience") == 10 &&
                  recipe_get_int(r, "train.average_last") == 10 &&
                  !strcmp(recipe_get_string(r, "data.scoring"), "tok"),
              "recipe: multi30k.json has the reference settings");
    }
    recipe_free(r);
}

/* ------------------------------------------------------------------ docs */

static void docs(void) {
    char *doc = mmt_read_file("docs/RECIPES.md", NULL, NULL);
    CHECK(doc != NULL, "recipe: docs/RECIPES.md is readable");
    if (!doc) return;

    // the first column of every table row that names a key
    const char *listed[256];
    int nlisted = 0;
    char *save = NULL;
    char *copy = strdup(doc);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| `", 3)) continue;
        char *end = strchr(line + 3, '`');
        if (!end || nlisted == 256) continue;
        *end = '\0';
        listed[nlisted++] = line + 3;
    }
    int missing = 0, extra = 0;
    for (int i = 0; i < recipe_num_keys(); i++) {
        int found = 0;
        for (int j = 0; j < nlisted; j++) found |= !strcmp(listed[j], recipe_key_at(i)->key);
        if (!found) printf("  docs/RECIPES.md lacks %s\n", recipe_key_at(i)->key), missing++;
    }
    for (int j = 0; j < nlisted; j++)
        if (!recipe_find_key(listed[j])) printf("  docs/RECIPES.md has %s\n", listed[j]), extra++;
    CHECK(!missing && !extra && nlisted == recipe_num_keys(),
          "recipe: docs/RECIPES.md lists the %d keys of the table (%d missing, %d not in it)",
          recipe_num_keys(), missing, extra);

    // and is, word for word, what the table writes
    char *written = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&written, &len);
    int rc = recipe_write_docs(f);
    fclose(f);
    CHECK(rc == MMT_OK && !strcmp(doc, written),
          "recipe: docs/RECIPES.md is up to date (else regenerate it with recipe_write_docs)");
    free(written);
    free(copy);
    free(doc);
}

/* --------------------------------------------------------------- table */

static void table(void) {
    // keys unique, no meaning with a '|' that would break the docs' table,
    // and sections contiguous: docs and JSON print each one once
    int ok = 1;
    const char *seen[32];
    int nseen = 0;
    for (int i = 0; i < recipe_num_keys(); i++) {
        const recipe_key *k = recipe_key_at(i);
        if (strchr(k->meaning, '|') || recipe_find_key(k->key) != k) ok = 0;
        const char *dot = strchr(k->key, '.');
        int n = dot ? (int)(dot - k->key) : 0;
        if (nseen && !strncmp(seen[nseen - 1], k->key, (size_t)n) &&
            (n ? seen[nseen - 1][n] == '.' : !strchr(seen[nseen - 1], '.')))
            continue; /* same section as the key before */
        for (int j = 0; j < nseen; j++) {
            const char *d = strchr(seen[j], '.');
            if ((d ? (int)(d - seen[j]) : 0) == n && !strncmp(seen[j], k->key, (size_t)n)) ok = 0;
        }
        if (nseen < 32) seen[nseen++] = k->key;
    }
    CHECK(ok, "recipe: the key table: unique keys, contiguous sections, no '|' in meanings");
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void suite_recipe(void) {
    snprintf(dir, sizeof dir, "/tmp/mmt-recipe-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "recipe: mkdtemp %s", dir);
        return;
    }
    table();
    defaults();
    extends();
    sets();
    bad_input();
    presets();
    penal_enabled();
    to_json();
    getter_bug();
    shipped();
    docs();
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
