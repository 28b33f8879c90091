/*
 * model.c - the Transformer encoder-decoder: parameter table, activation
 * arena, forward and backward as flat lists of layer calls.
 *
 * Every residual sublayer is one of two shapes (x its input, F its branch):
 *   post-norm: a = F(x),       z = dropout(a), y = LN(x + z)
 *   pre-norm:  a = F(LN(x)),   z = dropout(a), y = x + z
 * and in backward the branch receives dz = dy' + c z (the penal connection,
 * c = tau * grad_scale, on non-pad rows), dy' being the gradient reaching
 * the residual sum.
 */
#include "model_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* x (n) = 0, on every thread: backward buffers are large and zeroed often. */
static void zero_floats(float *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 4096)
        memset(x + i, 0, (n - i < 4096 ? n - i : 4096) * sizeof *x);
}

/* ================================================================ config */

model_config model_config_default(void) {
    model_config c = {0};
    c.enc_layers = 4;
    c.dec_layers = 4;
    c.D = 128;
    c.F = 256;
    c.H = 4;
    c.V = 0;
    c.max_positions = 1024;
    c.pre_norm = 0;
    c.dropout = 0.3f;
    c.label_smoothing = 0.1f;
    c.pad_id = 0;
    c.unk_id = 1;
    c.bos_id = 2;
    c.eos_id = 3;
    c.tau = 0.0f;
    c.penal_mask = PENAL_ALL;
    c.seed = 1;
    c.fusion = FUSION_NONE;
    c.img_positions = 1;
    return c;
}

static const struct {
    const char *name;
    unsigned bit;
} penal_names[] = {
    {"enc_self", PENAL_ENC_SELF}, {"enc_ffn", PENAL_ENC_FFN},   {"dec_self", PENAL_DEC_SELF},
    {"dec_cross", PENAL_DEC_CROSS}, {"dec_ffn", PENAL_DEC_FFN}, {"fusion", PENAL_FUSION},
};
#define N_PENAL_NAMES (sizeof penal_names / sizeof penal_names[0])

static const char *const fusion_names[] = {"none", "gated", "selective"};

static int cfg_int(const cJSON *it, const char *where, int lo, int hi, int *out,
                   mmt_status *st) {
    if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int)it->valuedouble)
        return mmt_fail(st, "%s: \"%s\": expected an integer", where, it->string);
    if (it->valueint < lo || it->valueint > hi)
        return mmt_fail(st, "%s: \"%s\": expected %d..%d, got %d", where, it->string, lo, hi,
                        it->valueint);
    *out = it->valueint;
    return MMT_OK;
}

static int cfg_float(const cJSON *it, const char *where, double lo, double hi, float *out,
                     mmt_status *st) {
    if (!cJSON_IsNumber(it))
        return mmt_fail(st, "%s: \"%s\": expected a number", where, it->string);
    if (it->valuedouble < lo || it->valuedouble > hi)
        return mmt_fail(st, "%s: \"%s\": expected %g..%g, got %g", where, it->string, lo, hi,
                        it->valuedouble);
    *out = (float)it->valuedouble;
    return MMT_OK;
}

static int cfg_choice(const cJSON *it, const char *where, const char *a, const char *b,
                      int *out, mmt_status *st) {
    if (!cJSON_IsString(it) || (strcmp(it->valuestring, a) && strcmp(it->valuestring, b)))
        return mmt_fail(st, "%s: \"%s\": expected \"%s\" or \"%s\"", where, it->string, a, b);
    *out = strcmp(it->valuestring, b) == 0;
    return MMT_OK;
}

static int cfg_penal(model_config *c, const cJSON *obj, const char *where, mmt_status *st) {
    if (!cJSON_IsObject(obj)) return mmt_fail(st, "%s: \"penal\": expected an object", where);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        const char *k = it->string;
        int rc = MMT_OK;
        if (!strcmp(k, "tau")) {
            rc = cfg_float(it, where, 0.0, 1e3, &c->tau, st);
        } else if (!strcmp(k, "before_dropout")) {
            if (!cJSON_IsBool(it))
                return mmt_fail(st, "%s: \"penal.before_dropout\": expected true or false", where);
            c->penal_before_dropout = cJSON_IsTrue(it);
        } else if (!strcmp(k, "sublayers")) {
            if (!cJSON_IsArray(it))
                return mmt_fail(st, "%s: \"penal.sublayers\": expected a list", where);
            unsigned mask = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, it) {
                unsigned bit = 0;
                for (size_t i = 0; cJSON_IsString(s) && i < N_PENAL_NAMES; i++)
                    if (!strcmp(s->valuestring, penal_names[i].name)) bit = penal_names[i].bit;
                if (!bit)
                    return mmt_fail(st, "%s: \"penal.sublayers\": unknown sublayer %s (expected "
                                    "enc_self, enc_ffn, dec_self, dec_cross, dec_ffn, fusion)",
                                    where,
                                    cJSON_IsString(s) ? s->valuestring : "(not a string)");
                mask |= bit;
            }
            c->penal_mask = mask;
        } else {
            return mmt_fail(st, "%s: unknown key \"penal.%s\"", where, k);
        }
        if (rc) return rc;
    }
    return MMT_OK;
}

int model_config_apply(model_config *c, const cJSON *obj, const char *where, mmt_status *st) {
    if (!cJSON_IsObject(obj)) return mmt_fail(st, "%s: expected a JSON object", where);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        const char *k = it->string;
        int rc, flag = 0;
        if (!strcmp(k, "encoder_layers")) rc = cfg_int(it, where, 1, 64, &c->enc_layers, st);
        else if (!strcmp(k, "decoder_layers")) rc = cfg_int(it, where, 1, 64, &c->dec_layers, st);
        else if (!strcmp(k, "d_model")) rc = cfg_int(it, where, 2, 16384, &c->D, st);
        else if (!strcmp(k, "ffn_dim")) rc = cfg_int(it, where, 1, 65536, &c->F, st);
        else if (!strcmp(k, "heads")) rc = cfg_int(it, where, 1, 256, &c->H, st);
        else if (!strcmp(k, "max_positions"))
            rc = cfg_int(it, where, 8, 65536, &c->max_positions, st);
        else if (!strcmp(k, "dropout")) rc = cfg_float(it, where, 0.0, 0.99, &c->dropout, st);
        else if (!strcmp(k, "attention_dropout"))
            rc = cfg_float(it, where, 0.0, 0.99, &c->attn_dropout, st);
        else if (!strcmp(k, "activation_dropout"))
            rc = cfg_float(it, where, 0.0, 0.99, &c->act_dropout, st);
        else if (!strcmp(k, "label_smoothing"))
            rc = cfg_float(it, where, 0.0, 0.99, &c->label_smoothing, st);
        else if (!strcmp(k, "norm")) {
            rc = cfg_choice(it, where, "post", "pre", &flag, st);
            if (!rc) c->pre_norm = flag;
        } else if (!strcmp(k, "activation")) {
            rc = cfg_choice(it, where, "relu", "relu", &flag, st);
        } else if (!strcmp(k, "positions")) {
            rc = cfg_choice(it, where, "sinusoidal", "sinusoidal", &flag, st);
        } else if (!strcmp(k, "share_embeddings")) {
            rc = cJSON_IsTrue(it) ? MMT_OK
                 : mmt_fail(st, "%s: \"share_embeddings\": only true (one joint vocabulary) "
                            "is supported", where);
        } else if (!strcmp(k, "penal")) {
            rc = cfg_penal(c, it, where, st);
        } else if (!strcmp(k, "fusion")) {
            int f = -1;
            for (int i = 0; cJSON_IsString(it) && i < 3; i++)
                if (!strcmp(it->valuestring, fusion_names[i])) f = i;
            rc = f >= 0 ? MMT_OK
                 : mmt_fail(st, "%s: \"fusion\": expected \"none\", \"gated\" or "
                            "\"selective\"", where);
            if (!rc) c->fusion = f;
        } else if (!strcmp(k, "image_dropout")) {
            rc = cfg_float(it, where, 0.0, 0.99, &c->img_dropout, st);
        } else if (!strcmp(k, "image_norm")) {
            rc = cfg_choice(it, where, "none", "standard", &flag, st);
            if (!rc) c->img_norm = flag;
        } else if (!strcmp(k, "image_positions")) {
            rc = cJSON_IsBool(it) ? MMT_OK
                 : mmt_fail(st, "%s: \"image_positions\": expected true or false", where);
            if (!rc) c->img_positions = cJSON_IsTrue(it);
        } else if (!strcmp(k, "image_hidden")) {
            rc = cfg_int(it, where, 0, 1 << 16, &c->img_hidden, st);
        } else if (!strcmp(k, "image_dim")) {
            rc = cfg_int(it, where, 0, 1 << 24, &c->img_dim, st);
        } else if (!strcmp(k, "image_regions")) {
            rc = cfg_int(it, where, 0, 1 << 20, &c->img_regions, st);
        } else if (!strcmp(k, "image_size")) {
            rc = cfg_int(it, where, 0, 1 << 16, &c->img_size, st);
        } else if (!strcmp(k, "image_patch")) {
            rc = cfg_int(it, where, 0, 1 << 16, &c->img_patch, st);
        } else if (!strcmp(k, "description")) {
            rc = MMT_OK;
        } else if (!strcmp(k, "vocab_size")) {
            rc = cfg_int(it, where, 4, 1 << 24, &c->V, st);
        } else if (!strcmp(k, "pad_id")) {
            rc = cfg_int(it, where, 0, 1 << 24, &c->pad_id, st);
        } else if (!strcmp(k, "bos_id")) {
            rc = cfg_int(it, where, 0, 1 << 24, &c->bos_id, st);
        } else if (!strcmp(k, "eos_id")) {
            rc = cfg_int(it, where, 0, 1 << 24, &c->eos_id, st);
        } else if (!strcmp(k, "unk_id")) {
            rc = cfg_int(it, where, 0, 1 << 24, &c->unk_id, st);
        } else {
            rc = mmt_fail(st, "%s: unknown key \"%s\"", where, k);
        }
        if (rc) return rc;
    }
    if (c->D % c->H)
        return mmt_fail(st, "%s: d_model %d is not a multiple of heads %d", where, c->D, c->H);
    return MMT_OK;
}

char *model_config_to_json(const model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "encoder_layers", c->enc_layers);
    cJSON_AddNumberToObject(o, "decoder_layers", c->dec_layers);
    cJSON_AddNumberToObject(o, "d_model", c->D);
    cJSON_AddNumberToObject(o, "ffn_dim", c->F);
    cJSON_AddNumberToObject(o, "heads", c->H);
    cJSON_AddStringToObject(o, "norm", c->pre_norm ? "pre" : "post");
    cJSON_AddStringToObject(o, "activation", "relu");
    cJSON_AddNumberToObject(o, "dropout", c->dropout);
    cJSON_AddNumberToObject(o, "attention_dropout", c->attn_dropout);
    cJSON_AddNumberToObject(o, "activation_dropout", c->act_dropout);
    cJSON_AddBoolToObject(o, "share_embeddings", 1);
    cJSON_AddStringToObject(o, "positions", "sinusoidal");
    cJSON_AddNumberToObject(o, "max_positions", c->max_positions);
    cJSON_AddNumberToObject(o, "label_smoothing", c->label_smoothing);
    cJSON *pen = cJSON_AddObjectToObject(o, "penal");
    cJSON_AddNumberToObject(pen, "tau", c->tau);
    cJSON *subs = cJSON_AddArrayToObject(pen, "sublayers");
    for (size_t i = 0; i < N_PENAL_NAMES; i++)
        if (c->penal_mask & penal_names[i].bit)
            cJSON_AddItemToArray(subs, cJSON_CreateString(penal_names[i].name));
    cJSON_AddBoolToObject(pen, "before_dropout", c->penal_before_dropout);
    cJSON_AddStringToObject(o, "fusion", fusion_names[c->fusion]);
    if (c->fusion != FUSION_NONE) {
        cJSON_AddNumberToObject(o, "image_dropout", c->img_dropout);
        cJSON_AddBoolToObject(o, "image_positions", c->img_positions);
        cJSON_AddStringToObject(o, "image_norm", c->img_norm ? "standard" : "none");
        cJSON_AddNumberToObject(o, "image_hidden", c->img_hidden);
        cJSON_AddNumberToObject(o, "image_dim", c->img_dim);
        cJSON_AddNumberToObject(o, "image_regions", c->img_regions);
        cJSON_AddNumberToObject(o, "image_size", c->img_size);
        cJSON_AddNumberToObject(o, "image_patch", c->img_patch);
    }
    cJSON_AddNumberToObject(o, "vocab_size", c->V);
    cJSON_AddNumberToObject(o, "pad_id", c->pad_id);
    cJSON_AddNumberToObject(o, "bos_id", c->bos_id);
    cJSON_AddNumberToObject(o, "eos_id", c->eos_id);
    cJSON_AddNumberToObject(o, "unk_id", c->unk_id);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int model_config_load(model_config *cfg, const char *path, mmt_status *st) {
    char *text = mmt_read_file(path, NULL, st);
    if (!text) return MMT_ERR;
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; e && p < e; p++) line += *p == '\n';
        free(text);
        return mmt_fail(st, "%s:%d: invalid JSON", path, line);
    }
    int rc = model_config_apply(cfg, root, path, st);
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ====================================================== parameter table */

static size_t add_tensor(mmt_model *m, const char *name, int d0, int d1) {
    if (m->ntensors == m->cap_tensors) {
        m->cap_tensors = m->cap_tensors ? 2 * m->cap_tensors : 64;
        m->tensors = mmt_realloc(m->tensors, m->cap_tensors * sizeof *m->tensors);
    }
    param_tensor *t = &m->tensors[m->ntensors++];
    MMT_ASSERT(strlen(name) < sizeof t->name);
    strcpy(t->name, name);
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->size = (size_t)d0 * (d1 ? d1 : 1);
    t->offset = m->nparams;
    m->nparams += (t->size + 15) / 16 * 16; /* 64-byte aligned tensors */
    return t->offset;
}

/* Lay out every tensor; the order is the checkpoint's and the fixture's. */
static void build_table(mmt_model *m) {
    const int D = m->cfg.D, F = m->cfg.F;
    char n[64];
    m->embed = add_tensor(m, "embed.weight", m->cfg.V, D);
    for (int l = 0; l < m->cfg.enc_layers; l++) {
        enc_off *e = &m->enc[l];
#define T2(field, suffix, d0, d1) \
    (snprintf(n, sizeof n, "enc.%d.%s", l, suffix), e->field = add_tensor(m, n, d0, d1))
        T2(qkv_w, "self_attn.qkv.weight", 3 * D, D);
        T2(qkv_b, "self_attn.qkv.bias", 3 * D, 0);
        T2(out_w, "self_attn.out.weight", D, D);
        T2(out_b, "self_attn.out.bias", D, 0);
        T2(n1_g, "self_attn_norm.weight", D, 0);
        T2(n1_b, "self_attn_norm.bias", D, 0);
        T2(fc1_w, "ffn.fc1.weight", F, D);
        T2(fc1_b, "ffn.fc1.bias", F, 0);
        T2(fc2_w, "ffn.fc2.weight", D, F);
        T2(fc2_b, "ffn.fc2.bias", D, 0);
        T2(n2_g, "ffn_norm.weight", D, 0);
        T2(n2_b, "ffn_norm.bias", D, 0);
#undef T2
    }
    if (m->cfg.pre_norm) {
        m->enc_norm_g = add_tensor(m, "enc.norm.weight", D, 0);
        m->enc_norm_b = add_tensor(m, "enc.norm.bias", D, 0);
    }
    for (int l = 0; l < m->cfg.dec_layers; l++) {
        dec_off *d = &m->dec[l];
#define T2(field, suffix, d0, d1) \
    (snprintf(n, sizeof n, "dec.%d.%s", l, suffix), d->field = add_tensor(m, n, d0, d1))
        T2(qkv_w, "self_attn.qkv.weight", 3 * D, D);
        T2(qkv_b, "self_attn.qkv.bias", 3 * D, 0);
        T2(out_w, "self_attn.out.weight", D, D);
        T2(out_b, "self_attn.out.bias", D, 0);
        T2(n1_g, "self_attn_norm.weight", D, 0);
        T2(n1_b, "self_attn_norm.bias", D, 0);
        T2(q_w, "cross_attn.q.weight", D, D);
        T2(q_b, "cross_attn.q.bias", D, 0);
        T2(kv_w, "cross_attn.kv.weight", 2 * D, D);
        T2(kv_b, "cross_attn.kv.bias", 2 * D, 0);
        T2(cout_w, "cross_attn.out.weight", D, D);
        T2(cout_b, "cross_attn.out.bias", D, 0);
        T2(n2_g, "cross_attn_norm.weight", D, 0);
        T2(n2_b, "cross_attn_norm.bias", D, 0);
        T2(fc1_w, "ffn.fc1.weight", F, D);
        T2(fc1_b, "ffn.fc1.bias", F, 0);
        T2(fc2_w, "ffn.fc2.weight", D, F);
        T2(fc2_b, "ffn.fc2.bias", D, 0);
        T2(n3_g, "ffn_norm.weight", D, 0);
        T2(n3_b, "ffn_norm.bias", D, 0);
#undef T2
    }
    if (m->cfg.pre_norm) {
        m->dec_norm_g = add_tensor(m, "dec.norm.weight", D, 0);
        m->dec_norm_b = add_tensor(m, "dec.norm.bias", D, 0);
    }
    m->ntrained = m->nparams;
    if (m->cfg.fusion == FUSION_NONE) return;

    /* the image pathway (fusion.h): regions, then the gate and, for the
     * selective fusion, its attention */
    fusion_off *f = &m->fo;
    int Hv = m->cfg.img_hidden;
    if (Hv) {
        f->hid_w = add_tensor(m, "img.hidden.weight", Hv, m->cfg.img_dim);
        f->hid_b = add_tensor(m, "img.hidden.bias", Hv, 0);
    }
    f->proj_w = add_tensor(m, "img.proj.weight", D, Hv ? Hv : m->cfg.img_dim);
    f->proj_b = add_tensor(m, "img.proj.bias", D, 0);
    if (m->cfg.img_positions) f->pos = add_tensor(m, "img.pos", m->cfg.img_regions, D);
    f->gt_w = add_tensor(m, "fusion.gate_text.weight", D, D);
    f->gi_w = add_tensor(m, "fusion.gate_image.weight", D, D);
    f->g_b = add_tensor(m, "fusion.gate.bias", D, 0);
    if (m->cfg.fusion == FUSION_SELECTIVE) {
        f->q_w = add_tensor(m, "fusion.q.weight", D, D);
        f->q_b = add_tensor(m, "fusion.q.bias", D, 0);
        f->kv_w = add_tensor(m, "fusion.kv.weight", 2 * D, D);
        f->kv_b = add_tensor(m, "fusion.kv.bias", 2 * D, 0);
    }
    /* untrained: after every trained tensor */
    m->ntrained = m->nparams;
    if (m->cfg.img_norm) {
        f->st_mean = add_tensor(m, "img.stats.mean", m->cfg.img_dim, 0);
        f->st_scale = add_tensor(m, "img.stats.scale", m->cfg.img_dim, 0);
    }
}

/* A small seeded generator for initialisation (splitmix64). */
static uint64_t init_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double init_uniform(uint64_t *s) {
    return (init_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Fill by name: norms' weights 1, biases 0, embeddings N(0, D^-1/2),
 * linear weights xavier-uniform per (D, D) block of fused projections; the
 * image statistics the identity (mean 0, scale 1) until the trainer sets
 * them. */
static void init_params(mmt_model *m) {
    uint64_t s = m->cfg.seed * 0x2545F4914F6CDD1Dull + 7;
    for (int i = 0; i < m->ntensors; i++) {
        const param_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        size_t len = strlen(t->name);
        int is_norm = strstr(t->name, "norm.") != NULL;
        if (!strcmp(t->name, "img.stats.mean")) {
            for (size_t j = 0; j < t->size; j++) p[j] = 0.0f;
        } else if (!strcmp(t->name, "img.stats.scale")) {
            for (size_t j = 0; j < t->size; j++) p[j] = 1.0f;
        } else if (len > 5 && !strcmp(t->name + len - 5, ".bias")) {
            for (size_t j = 0; j < t->size; j++) p[j] = 0.0f;
        } else if (is_norm) {
            for (size_t j = 0; j < t->size; j++) p[j] = 1.0f;
        } else if (!strcmp(t->name, "embed.weight") || !strcmp(t->name, "img.pos")) {
            double sd = 1.0 / sqrt((double)m->cfg.D);
            for (size_t j = 0; j < t->size; j += 2) {
                double u1 = init_uniform(&s) + 1e-300, u2 = init_uniform(&s);
                double r = sqrt(-2.0 * log(u1));
                p[j] = (float)(sd * r * cos(2 * M_PI * u2));
                if (j + 1 < t->size) p[j + 1] = (float)(sd * r * sin(2 * M_PI * u2));
            }
            if (t->name[0] == 'e') memset(p + (size_t)m->cfg.pad_id * m->cfg.D, 0,
                                          m->cfg.D * sizeof *p);
        } else {
            /* fused projections are initialised as their D-row blocks would be */
            int rows = t->shape[0], cols = t->shape[1];
            int block = rows % cols == 0 && rows > cols ? cols : rows;
            double a = sqrt(6.0 / (block + cols));
            for (size_t j = 0; j < t->size; j++) p[j] = (float)(a * (2 * init_uniform(&s) - 1));
        }
    }
}

mmt_model *model_create(const model_config *cfg) {
    MMT_ASSERT(cfg->V > 0 && cfg->D > 0 && cfg->H > 0 && cfg->D % cfg->H == 0);
    MMT_ASSERT(cfg->fusion == FUSION_NONE || (cfg->img_dim > 0 && cfg->img_regions > 0));
    mmt_model *m = mmt_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->enc = mmt_calloc(cfg->enc_layers, sizeof *m->enc);
    m->dec = mmt_calloc(cfg->dec_layers, sizeof *m->dec);
    m->ea = mmt_calloc(cfg->enc_layers, sizeof *m->ea);
    m->da = mmt_calloc(cfg->dec_layers, sizeof *m->da);
    build_table(m);
    m->params = mmt_aligned(m->nparams * sizeof(float));
    m->grads = mmt_aligned(m->nparams * sizeof(float));
    zero_floats(m->params, m->nparams);
    zero_floats(m->grads, m->nparams);
    init_params(m);
    m->pe = mmt_malloc((size_t)cfg->max_positions * cfg->D * sizeof *m->pe);
    positions_init(m->pe, cfg->max_positions, cfg->D);
    return m;
}

void model_free(mmt_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->enc);
    free(m->dec);
    free(m->ea);
    free(m->da);
    free(m->pe);
    free(m->arena);
    free(m->logits_copy);
    free(m->src_pad);
    free(m->tgt_pad);
    free(m);
}

const model_config *model_cfg(const mmt_model *m) { return &m->cfg; }

void model_set_penal(mmt_model *m, float tau, unsigned mask, int before_dropout) {
    m->cfg.tau = tau;
    m->cfg.penal_mask = mask;
    m->cfg.penal_before_dropout = before_dropout;
}

int model_num_tensors(const mmt_model *m) { return m->ntensors; }
const param_tensor *model_tensor(const mmt_model *m, int i) { return &m->tensors[i]; }
size_t model_num_params(const mmt_model *m) { return m->nparams; }
size_t model_num_trained(const mmt_model *m) { return m->ntrained; }
float *model_params(mmt_model *m) { return m->params; }
float *model_grads(mmt_model *m) { return m->grads; }
void model_zero_grads(mmt_model *m) { zero_floats(m->grads, m->nparams); }

const param_tensor *model_find_tensor(const mmt_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* ======================================================= activation arena */

/* Bump allocator over the arena; with base NULL it only counts. */
typedef struct {
    float *base;
    size_t used;
} bump;

static float *take(bump *b, size_t n) {
    float *p = b->base ? b->base + b->used : NULL;
    b->used += (n + 15) / 16 * 16;
    return p;
}

static void layout_sub(bump *b, sub_acts *s, const model_config *c, size_t N, int drop) {
    size_t ND = N * c->D;
    s->h = c->pre_norm ? take(b, ND) : NULL;
    s->mean = take(b, N);
    s->rstd = take(b, N);
    s->r = c->pre_norm ? NULL : take(b, ND);
    s->a = take(b, ND);
    s->z = drop ? take(b, ND) : s->a;
    s->y = take(b, ND);
}

/* Assign every activation for a batch of shape (B, S, T); returns floats used. */
static size_t layout(mmt_model *m, float *base, int B, int S, int T) {
    const model_config *c = &m->cfg;
    const size_t D = c->D, F = c->F, H = c->H, V = c->V;
    const size_t Ns = (size_t)B * S, Nt = (size_t)B * T, N = Ns > Nt ? Ns : Nt;
    const int drop = c->dropout > 0.0f, act_drop = c->act_dropout > 0.0f;
    bump b = {base, 0};

    m->src_emb = take(&b, Ns * D);
    for (int l = 0; l < c->enc_layers; l++) {
        enc_acts *e = &m->ea[l];
        layout_sub(&b, &e->sa, c, Ns, drop);
        e->qkv = take(&b, Ns * 3 * D);
        e->probs = take(&b, (size_t)B * H * S * S);
        e->ctx = take(&b, Ns * D);
        layout_sub(&b, &e->ff, c, Ns, drop);
        e->hid = take(&b, Ns * F);
        e->hid_d = act_drop ? take(&b, Ns * F) : e->hid;
    }
    if (c->pre_norm) layout_sub(&b, &m->enc_fin, c, Ns, 0);
    if (c->fusion != FUSION_NONE) {
        const size_t Ni = (size_t)B * c->img_regions;
        m->img_xd = take(&b, Ni * c->img_dim);
        m->img_h = c->img_hidden ? take(&b, Ni * c->img_hidden) : NULL;
        m->img_v = take(&b, Ni * D);
        m->img_g = take(&b, (size_t)B * D);
        m->fa.lam = take(&b, Ns * D);
        int sel = c->fusion == FUSION_SELECTIVE;
        m->fa.q = sel ? take(&b, Ns * D) : NULL;
        m->fa.kv = sel ? take(&b, Ni * 2 * D) : NULL;
        m->fa.probs = sel ? take(&b, Ns * c->img_regions) : NULL;
        m->fa.himg = sel ? take(&b, Ns * D) : NULL;
        m->fus_z = take(&b, Ns * D);
        m->fus_y = take(&b, Ns * D);
        m->dimg_v = take(&b, Ni * D);
        m->dimg_h = c->img_hidden ? take(&b, Ni * c->img_hidden) : NULL;
        m->dimg_g = take(&b, (size_t)B * D);
        m->dfus_z = take(&b, Ns * D);
        m->dfus_h = take(&b, Ns * D);
    }
    m->tgt_emb = take(&b, Nt * D);
    for (int l = 0; l < c->dec_layers; l++) {
        dec_acts *d = &m->da[l];
        layout_sub(&b, &d->sa, c, Nt, drop);
        d->qkv = take(&b, Nt * 3 * D);
        d->sa_probs = take(&b, (size_t)B * H * T * T);
        d->sa_ctx = take(&b, Nt * D);
        layout_sub(&b, &d->ca, c, Nt, drop);
        d->q = take(&b, Nt * D);
        d->kv = take(&b, Ns * 2 * D);
        d->ca_probs = take(&b, (size_t)B * H * T * S);
        d->ca_ctx = take(&b, Nt * D);
        layout_sub(&b, &d->ff, c, Nt, drop);
        d->hid = take(&b, Nt * F);
        d->hid_d = act_drop ? take(&b, Nt * F) : d->hid;
    }
    if (c->pre_norm) layout_sub(&b, &m->dec_fin, c, Nt, 0);
    m->logits = take(&b, Nt * V);
    m->lse = take(&b, Nt);
    m->dlogits = m->logits; /* the largest tensor: its gradient replaces it */
    m->rinv = take(&b, Nt);

    /* backward scratch, sized for the longer side */
    m->g0 = take(&b, N * D);
    m->g1 = take(&b, N * D);
    m->dr = take(&b, N * D);
    m->dA = take(&b, N * D);
    m->dh = take(&b, N * D);
    m->dctx = take(&b, N * D);
    m->dqkv = take(&b, N * 3 * D);
    m->dhid = take(&b, N * F);
    m->dhid2 = take(&b, N * F);
    m->denc = take(&b, Ns * D);
    m->dkv = take(&b, Ns * 2 * D);
    return b.used;
}

/* Make the arena fit (B, S, T) and mark padded positions; tgt_in may be
 * NULL when only the encoder runs. */
static void prepare(mmt_model *m, const int *src, const int *tgt_in, int B, int S, int T) {
    MMT_ASSERT(S <= m->cfg.max_positions && T <= m->cfg.max_positions);
    size_t need = layout(m, NULL, B, S, T);
    if (need > m->arena_cap) {
        free(m->arena);
        m->arena = mmt_aligned(need * sizeof(float));
        m->arena_cap = need;
    }
    layout(m, m->arena, B, S, T);
    m->B = B;
    m->S = S;
    m->T = T;

    size_t npad = (size_t)B * (S + T);
    if (npad > m->pad_cap) {
        m->src_pad = mmt_realloc(m->src_pad, npad);
        m->tgt_pad = mmt_realloc(m->tgt_pad, npad);
        m->pad_cap = npad;
    }
    for (int i = 0; i < B * S; i++) m->src_pad[i] = src[i] == m->cfg.pad_id;
    for (int i = 0; i < B * T; i++) m->tgt_pad[i] = tgt_in ? tgt_in[i] == m->cfg.pad_id : 0;
}

size_t model_arena_bytes(const mmt_model *m) { return m->arena_cap * sizeof(float); }
const float *model_logits(mmt_model *m) {
    if (m->logits_valid) return m->logits;
    /* the buffer now holds exponentials or gradients: recompute h E^T */
    const size_t n = (size_t)m->B * m->T * m->cfg.V;
    if (n > m->logits_copy_cap) {
        free(m->logits_copy);
        m->logits_copy = mmt_malloc(n * sizeof(float));
        m->logits_copy_cap = n;
    }
    linear_forward(m->logits_copy, m->cfg.V, m->dec_out, m->cfg.D, m->params + m->embed, NULL,
                   m->B * m->T, m->cfg.D, m->cfg.V);
    return m->logits_copy;
}

/* ========================================================= sublayer glue */


/* Dropout seed of a site: kind 0 encoder, 1 decoder, 2 embeddings. */
static uint64_t seed_of(const mmt_model *m, int kind, int layer, int site) {
    uint64_t slot = ((uint64_t)kind << 32) | ((uint64_t)layer << 8) | (uint64_t)site;
    return dropout_seed(m->cfg.seed, m->step, slot);
}

static float drop_p(const mmt_model *m, float p) { return m->train ? p : 0.0f; }

/* Branch input: LN(x) for pre-norm, x itself for post-norm. */
static const float *sub_in(mmt_model *m, sub_acts *s, const float *x, size_t g, size_t b, int N) {
    if (!m->cfg.pre_norm) return x;
    layernorm_forward(s->h, s->mean, s->rstd, x, m->params + g, m->params + b, N, m->cfg.D);
    return s->h;
}

/* From the branch output s->a: z = dropout(a), then the residual (and norm). */
static void sub_out(mmt_model *m, sub_acts *s, const float *x, size_t g, size_t b, int N,
                    uint64_t seed) {
    const int D = m->cfg.D;
    float *sum = m->cfg.pre_norm ? s->y : s->r;
    if (s->z != s->a)
        dropout_residual_forward(sum, s->z, x, s->a, drop_p(m, m->cfg.dropout), seed, N, D);
    else
        residual_forward(sum, x, s->a, (long)N * D);
    if (!m->cfg.pre_norm)
        layernorm_forward(s->y, s->mean, s->rstd, s->r, m->params + g, m->params + b, N, D);
}

/* da += c * a on rows that are not padding (the penal term taken before dropout). */
static void penal_add(float *da, const float *a, float c, const uint8_t *pad, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        if (pad[r]) continue;
        for (int i = 0; i < D; i++) da[(size_t)r * D + i] += c * a[(size_t)r * D + i];
    }
}

/* Backward of sub_out: from dy (gradient of s->y) to dx (=, the skip path)
 * and m->dA (=, gradient of the branch output a); both are overwritten. With pre-norm the branch
 * input's gradient must still go through sub_in_backward. */
static void sub_out_backward(mmt_model *m, sub_acts *s, float *dx, const float *dy, size_t g,
                             size_t b, int N, uint64_t seed, int penal, const uint8_t *pad) {
    const int D = m->cfg.D;
    const long n = (long)N * D;
    const float p = drop_p(m, m->cfg.dropout);
    float c = penal ? m->cfg.tau * m->grad_scale : 0.0f;
    const float *dsum = dy; /* gradient reaching x + z */
    if (!m->cfg.pre_norm) {
        layernorm_backward_into(m->dr, m->grads + g, m->grads + b, dy, s->mean, s->rstd,
                                s->r, m->params + g, N, D);
        dsum = m->dr;
    }
    /* penal connection: the branch gets dsum + c z (or + c a before dropout) */
    int before = m->cfg.penal_before_dropout && s->z != s->a;
    if (s->z != s->a) {
        dropout_residual_backward(dx, m->dA, dsum, s->z, before ? 0.0f : c, pad, p, seed, N, D);
    } else {
        zero_floats(dx, n);
        zero_floats(m->dA, n);
        residual_backward(dx, m->dA, dsum, s->z, c, pad, N, D);
    }
    if (before && c != 0.0f) penal_add(m->dA, s->a, c, pad, N, D);
}

/* Backward of sub_in: dbranch_in is the gradient of the branch input; adds to dx. */
static void sub_in_backward(mmt_model *m, sub_acts *s, float *dx, const float *dbranch,
                            const float *x, size_t g, size_t b, int N) {
    if (!m->cfg.pre_norm) return; /* the branch read x directly: already in dx */
    layernorm_backward(dx, m->grads + g, m->grads + b, dbranch, s->mean, s->rstd, x,
                       m->params + g, N, m->cfg.D);
}

/* ========================================================== the sublayers */

static attn_dims dims_of(const mmt_model *m, int Tq, int Tk, int ldq, int ldkv, int causal,
                         uint64_t seed) {
    attn_dims a = {m->B, Tq, Tk, m->cfg.H, m->cfg.D / m->cfg.H, ldq, ldkv, ldkv, causal,
                   drop_p(m, m->cfg.attn_dropout), seed};
    return a;
}

/* Offsets of a self-attention sublayer's tensors. */
typedef struct { size_t qkv_w, qkv_b, out_w, out_b, g, b; } self_off;
/* Offsets of a feed-forward sublayer's tensors. */
typedef struct { size_t fc1_w, fc1_b, fc2_w, fc2_b, g, b; } ffn_off;

/* Self-attention sublayer: y from x (N = B*Tq rows), keys masked by pad. */
static void self_attn_forward(mmt_model *m, sub_acts *s, float *qkv, float *probs, float *ctx,
                              const float *x, const self_off *w, int T, int causal,
                              const uint8_t *pad, uint64_t seed) {
    const int D = m->cfg.D, N = m->B * T;
    const float *P = m->params;
    const float *h = sub_in(m, s, x, w->g, w->b, N);
    linear_forward(qkv, 3 * D, h, D, P + w->qkv_w, P + w->qkv_b, N, D, 3 * D);
    attn_dims ad = dims_of(m, T, T, 3 * D, 3 * D, causal, seed + 1);
    attention_forward(ctx, probs, qkv, qkv + D, qkv + 2 * D, pad, &ad);
    linear_forward(s->a, D, ctx, D, P + w->out_w, P + w->out_b, N, D, D);
    sub_out(m, s, x, w->g, w->b, N, seed);
}

static void self_attn_backward(mmt_model *m, sub_acts *s, const float *qkv, const float *probs,
                               const float *ctx, float *dx, const float *dy, const float *x,
                               const self_off *w, int T, int causal, const uint8_t *pad,
                               uint64_t seed, int penal) {
    const int D = m->cfg.D, N = m->B * T;
    const float *P = m->params;
    float *G = m->grads;
    sub_out_backward(m, s, dx, dy, w->g, w->b, N, seed, penal, pad);

    /* out projection, attention, then the fused q, k, v projection */
    linear_backward_into(m->dctx, D, G + w->out_w, G + w->out_b, m->dA, D, ctx, D,
                         P + w->out_w, N, D, D);
    attn_dims ad = dims_of(m, T, T, 3 * D, 3 * D, causal, seed + 1);
    attention_backward(m->dqkv, m->dqkv + D, m->dqkv + 2 * D, m->dctx, probs, qkv, qkv + D,
                       qkv + 2 * D, pad, &ad);
    /* pre-norm: the branch input's gradient is new (m->dh); post-norm: it
     * adds to the skip's in dx */
    (m->cfg.pre_norm ? linear_backward_into : linear_backward)(
        m->cfg.pre_norm ? m->dh : dx, D, G + w->qkv_w, G + w->qkv_b, m->dqkv, 3 * D,
        m->cfg.pre_norm ? s->h : x, D, P + w->qkv_w, N, D, 3 * D);
    sub_in_backward(m, s, dx, m->dh, x, w->g, w->b, N);
}

/* Feed-forward sublayer: fc2(dropout(relu(fc1(x)))). */
static void ffn_forward(mmt_model *m, sub_acts *s, float *hid, float *hid_d, const float *x,
                        const ffn_off *w, int N, uint64_t seed) {
    const int D = m->cfg.D, F = m->cfg.F;
    const float *P = m->params;
    const float *h = sub_in(m, s, x, w->g, w->b, N);
    linear_forward(hid, F, h, D, P + w->fc1_w, P + w->fc1_b, N, D, F);
    relu_forward(hid, hid, (long)N * F);
    if (hid_d != hid)
        dropout_forward(hid_d, hid, (long)N * F, drop_p(m, m->cfg.act_dropout), seed + 1);
    linear_forward(s->a, D, hid_d, F, P + w->fc2_w, P + w->fc2_b, N, F, D);
    sub_out(m, s, x, w->g, w->b, N, seed);
}

static void ffn_backward(mmt_model *m, sub_acts *s, const float *hid, const float *hid_d,
                         float *dx, const float *dy, const float *x, const ffn_off *w, int N,
                         uint64_t seed, int penal, const uint8_t *pad) {
    const int D = m->cfg.D, F = m->cfg.F;
    const long nf = (long)N * F;
    const float *P = m->params;
    float *G = m->grads;
    sub_out_backward(m, s, dx, dy, w->g, w->b, N, seed, penal, pad);

    /* fc2, activation dropout, relu, fc1 */
    linear_backward_into(m->dhid, F, G + w->fc2_w, G + w->fc2_b, m->dA, D, hid_d, F,
                         P + w->fc2_w, N, F, D);
    float *dact = m->dhid;
    if (hid_d != hid) {
        zero_floats(m->dhid2, nf);
        dropout_backward(m->dhid2, m->dhid, nf, drop_p(m, m->cfg.act_dropout), seed + 1);
        dact = m->dhid2;
    }
    float *dpre = dact == m->dhid ? m->dhid2 : m->dhid;
    relu_backward(dpre, dact, hid, nf);
    (m->cfg.pre_norm ? linear_backward_into : linear_backward)(
        m->cfg.pre_norm ? m->dh : dx, D, G + w->fc1_w, G + w->fc1_b, dpre, F,
        m->cfg.pre_norm ? s->h : x, D, P + w->fc1_w, N, D, F);
    sub_in_backward(m, s, dx, m->dh, x, w->g, w->b, N);
}

/* Cross-attention sublayer: queries from x (B*T rows), keys and values
 * from the encoder output (B*S rows). */
static void cross_attn_forward(mmt_model *m, dec_acts *A, const float *x, const float *enc,
                               const dec_off *w, uint64_t seed) {
    const int D = m->cfg.D, Nt = m->B * m->T, Ns = m->B * m->S;
    const float *P = m->params;
    const float *h = sub_in(m, &A->ca, x, w->n2_g, w->n2_b, Nt);
    linear_forward(A->q, D, h, D, P + w->q_w, P + w->q_b, Nt, D, D);
    linear_forward(A->kv, 2 * D, enc, D, P + w->kv_w, P + w->kv_b, Ns, D, 2 * D);
    attn_dims ad = dims_of(m, m->T, m->S, D, 2 * D, 0, seed + 1);
    attention_forward(A->ca_ctx, A->ca_probs, A->q, A->kv, A->kv + D, m->src_pad, &ad);
    linear_forward(A->ca.a, D, A->ca_ctx, D, P + w->cout_w, P + w->cout_b, Nt, D, D);
    sub_out(m, &A->ca, x, w->n2_g, w->n2_b, Nt, seed);
}

/* Adds the encoder output's gradient into m->denc. */
static void cross_attn_backward(mmt_model *m, dec_acts *A, float *dx, const float *dy,
                                const float *x, const float *enc, const dec_off *w,
                                uint64_t seed, int penal) {
    const int D = m->cfg.D, Nt = m->B * m->T, Ns = m->B * m->S;
    const float *P = m->params;
    float *G = m->grads;
    sub_out_backward(m, &A->ca, dx, dy, w->n2_g, w->n2_b, Nt, seed, penal, m->tgt_pad);

    /* out projection, attention, then the q and the fused k, v projections */
    linear_backward_into(m->dctx, D, G + w->cout_w, G + w->cout_b, m->dA, D, A->ca_ctx, D,
                         P + w->cout_w, Nt, D, D);
    float *dq = m->dqkv;
    attn_dims ad = dims_of(m, m->T, m->S, D, 2 * D, 0, seed + 1);
    attention_backward(dq, m->dkv, m->dkv + D, m->dctx, A->ca_probs, A->q, A->kv, A->kv + D,
                       m->src_pad, &ad);
    linear_backward(m->denc, D, G + w->kv_w, G + w->kv_b, m->dkv, 2 * D, enc, D, P + w->kv_w,
                    Ns, D, 2 * D);
    (m->cfg.pre_norm ? linear_backward_into : linear_backward)(
        m->cfg.pre_norm ? m->dh : dx, D, G + w->q_w, G + w->q_b, dq, D,
        m->cfg.pre_norm ? A->ca.h : x, D, P + w->q_w, Nt, D, D);
    sub_in_backward(m, &A->ca, dx, m->dh, x, w->n2_g, w->n2_b, Nt);
}

static self_off enc_self(const enc_off *w) {
    return (self_off){w->qkv_w, w->qkv_b, w->out_w, w->out_b, w->n1_g, w->n1_b};
}
static ffn_off enc_ffn(const enc_off *w) {
    return (ffn_off){w->fc1_w, w->fc1_b, w->fc2_w, w->fc2_b, w->n2_g, w->n2_b};
}
static self_off dec_self(const dec_off *w) {
    return (self_off){w->qkv_w, w->qkv_b, w->out_w, w->out_b, w->n1_g, w->n1_b};
}
static ffn_off dec_ffn(const dec_off *w) {
    return (ffn_off){w->fc1_w, w->fc1_b, w->fc2_w, w->fc2_b, w->n3_g, w->n3_b};
}

/* Sublayer sites for dropout seeds (each uses site and site + 1). */
enum { SITE_SELF = 0, SITE_CROSS = 2, SITE_FFN = 4 };

/* =========================================================== the model */

static fusion_weights fusion_weights_of(const mmt_model *m) {
    const float *P = m->params;
    const fusion_off *f = &m->fo;
    int sel = m->cfg.fusion == FUSION_SELECTIVE;
    fusion_weights w = {P + f->gt_w, P + f->gi_w, P + f->g_b, sel ? P + f->q_w : NULL,
                        sel ? P + f->q_b : NULL, sel ? P + f->kv_w : NULL,
                        sel ? P + f->kv_b : NULL};
    return w;
}

/* The image fusion on the encoder output h: regions, then the gated or
 * selective branch z and the residual h + z (the penal connection's site).
 * Returns the fused output. */
static const float *image_fusion_forward(mmt_model *m, const float *h, const float *img) {
    const model_config *c = &m->cfg;
    const int B = m->B, S = m->S, P = c->img_regions, D = c->D;
    const fusion_off *f = &m->fo;
    const float *W = m->params;
    MMT_ASSERT(img != NULL);
    if (c->img_norm) {
        image_norm_forward(m->img_xd, img, W + f->st_mean, W + f->st_scale, (long)B * P,
                           c->img_dim);
        img = m->img_xd;
    }
    const float pd = drop_p(m, c->img_dropout);
    const uint64_t seed = seed_of(m, 2, 0, 2);
    const float *pos = c->img_positions ? W + f->pos : NULL;
    if (c->img_hidden) {
        /* regions through the hidden layer: relu(dropout(x) w_h^T + b_h), then projected */
        const int Hv = c->img_hidden;
        image_proj_forward(m->img_h, m->img_xd, img, W + f->hid_w, W + f->hid_b, NULL, pd, seed,
                           B, P, c->img_dim, Hv);
        relu_forward(m->img_h, m->img_h, (long)B * P * Hv);
        image_proj_forward(m->img_v, m->img_h, m->img_h, W + f->proj_w, W + f->proj_b, pos, 0.0f,
                           seed, B, P, Hv, D);
    } else {
        image_proj_forward(m->img_v, m->img_xd, img, W + f->proj_w, W + f->proj_b, pos, pd, seed,
                           B, P, c->img_dim, D);
    }
    fusion_dims d = {B, S, P, D};
    fusion_weights w = fusion_weights_of(m);
    if (c->fusion == FUSION_GATED) {
        image_pool_forward(m->img_g, m->img_v, B, P, D);
        fusion_gated_forward(m->fus_z, &m->fa, h, m->img_g, &w, &d);
    } else {
        fusion_selective_forward(m->fus_z, &m->fa, h, m->img_v, &w, &d);
    }
    residual_forward(m->fus_y, h, m->fus_z, (long)B * S * D);
    m->fus_h = h;
    return m->fus_y;
}

/* Backward of image_fusion_forward: from dy (gradient of the fused output)
 * to m->dfus_h (=, gradient of h) and the image pathway's weights. */
static void image_fusion_backward(mmt_model *m, const float *dy) {
    const model_config *c = &m->cfg;
    const int B = m->B, S = m->S, P = c->img_regions, D = c->D, Ns = B * S;
    const fusion_off *f = &m->fo;
    float *G = m->grads;
    const float pc = c->penal_mask & PENAL_FUSION ? c->tau * m->grad_scale : 0.0f;

    /* the residual h + z, with the penal connection on z */
    zero_floats(m->dfus_h, (size_t)Ns * D);
    zero_floats(m->dfus_z, (size_t)Ns * D);
    residual_backward(m->dfus_h, m->dfus_z, dy, m->fus_z, pc, m->src_pad, Ns, D);

    /* the branch, then the regions */
    fusion_dims d = {B, S, P, D};
    fusion_weights w = fusion_weights_of(m);
    int sel = c->fusion == FUSION_SELECTIVE;
    fusion_grads dw = {G + f->gt_w, G + f->gi_w, G + f->g_b, sel ? G + f->q_w : NULL,
                       sel ? G + f->q_b : NULL, sel ? G + f->kv_w : NULL,
                       sel ? G + f->kv_b : NULL};
    zero_floats(m->dimg_v, (size_t)B * P * D);
    if (!sel) {
        zero_floats(m->dimg_g, (size_t)B * D);
        fusion_gated_backward(m->dfus_h, m->dimg_g, &dw, m->dfus_z, &m->fa, m->fus_h, m->img_g,
                              &w, &d);
        image_pool_backward(m->dimg_v, m->dimg_g, B, P, D);
    } else {
        fusion_selective_backward(m->dfus_h, m->dimg_v, &dw, m->dfus_z, &m->fa, m->fus_h,
                                  m->img_v, &w, &d);
    }
    float *dpos = c->img_positions ? G + f->pos : NULL;
    if (c->img_hidden) {
        const int Hv = c->img_hidden, Ni = B * P;
        image_proj_backward(G + f->proj_w, G + f->proj_b, dpos, m->dimg_v, m->img_h, B, P, Hv, D);
        linear_backward_into(m->dimg_h, Hv, NULL, NULL, m->dimg_v, D, m->img_h, Hv,
                             m->params + f->proj_w, Ni, Hv, D);
        relu_backward(m->dimg_h, m->dimg_h, m->img_h, (long)Ni * Hv);
        image_proj_backward(G + f->hid_w, G + f->hid_b, NULL, m->dimg_h, m->img_xd, B, P,
                            c->img_dim, Hv);
    } else {
        image_proj_backward(G + f->proj_w, G + f->proj_b, dpos, m->dimg_v, m->img_xd, B, P,
                            c->img_dim, D);
    }
}

/* The encoder: embeddings, layers, final norm (pre-norm), the image fusion
 * (with one); sets m->enc_out. */
static void encoder_forward(mmt_model *m, const int *src, const float *img) {
    const model_config *c = &m->cfg;
    const int B = m->B, S = m->S, D = c->D, Ns = B * S;
    embedding_forward(m->src_emb, src, m->params + m->embed, m->pe, B, S, D);
    dropout_forward(m->src_emb, m->src_emb, (long)Ns * D, drop_p(m, c->dropout),
                    seed_of(m, 2, 0, 0));
    const float *x = m->src_emb;
    for (int l = 0; l < c->enc_layers; l++) {
        enc_acts *A = &m->ea[l];
        self_off so = enc_self(&m->enc[l]);
        ffn_off fo = enc_ffn(&m->enc[l]);
        self_attn_forward(m, &A->sa, A->qkv, A->probs, A->ctx, x, &so, S, 0, m->src_pad,
                          seed_of(m, 0, l, SITE_SELF));
        ffn_forward(m, &A->ff, A->hid, A->hid_d, A->sa.y, &fo, Ns, seed_of(m, 0, l, SITE_FFN));
        x = A->ff.y;
    }
    if (c->pre_norm) {
        layernorm_forward(m->enc_fin.h, m->enc_fin.mean, m->enc_fin.rstd, x,
                          m->params + m->enc_norm_g, m->params + m->enc_norm_b, Ns, D);
        x = m->enc_fin.h;
    }
    if (c->fusion != FUSION_NONE) x = image_fusion_forward(m, x, img);
    m->enc_out = (float *)x;
}

const float *model_encode(mmt_model *m, const int *src, const float *img, int B, int S) {
    m->train = 0;
    m->step = 0;
    prepare(m, src, NULL, B, S, 1);
    encoder_forward(m, src, img);
    return m->enc_out;
}

xent_result model_forward(mmt_model *m, const mmt_batch *bt, int train, uint64_t step) {
    const model_config *c = &m->cfg;
    m->train = train;
    m->step = step;
    prepare(m, bt->src, bt->tgt_in, bt->B, bt->S, bt->T);
    const int B = bt->B, T = bt->T, D = c->D, Nt = B * T;
    const float *E = m->params + m->embed;
    encoder_forward(m, bt->src, bt->img);

    /* decoder: embeddings, layers, final norm (pre-norm) */
    embedding_forward(m->tgt_emb, bt->tgt_in, E, m->pe, B, T, D);
    dropout_forward(m->tgt_emb, m->tgt_emb, (long)Nt * D, drop_p(m, c->dropout),
                    seed_of(m, 2, 0, 1));
    const float *y = m->tgt_emb;
    for (int l = 0; l < c->dec_layers; l++) {
        dec_acts *A = &m->da[l];
        self_off so = dec_self(&m->dec[l]);
        ffn_off fo = dec_ffn(&m->dec[l]);
        self_attn_forward(m, &A->sa, A->qkv, A->sa_probs, A->sa_ctx, y, &so, T, 1, m->tgt_pad,
                          seed_of(m, 1, l, SITE_SELF));
        cross_attn_forward(m, A, A->sa.y, m->enc_out, &m->dec[l], seed_of(m, 1, l, SITE_CROSS));
        ffn_forward(m, &A->ff, A->hid, A->hid_d, A->ca.y, &fo, Nt, seed_of(m, 1, l, SITE_FFN));
        y = A->ff.y;
    }
    if (c->pre_norm) {
        layernorm_forward(m->dec_fin.h, m->dec_fin.mean, m->dec_fin.rstd, y,
                          m->params + m->dec_norm_g, m->params + m->dec_norm_b, Nt, D);
        y = m->dec_fin.h;
    }
    m->dec_out = (float *)y;

    /* output projection (tied to the embeddings) and the loss */
    linear_forward(m->logits, c->V, m->dec_out, D, E, NULL, Nt, D, c->V);
    /* in training the exponentials the gradient needs come in the same pass,
     * in place of the logits */
    m->logits_valid = !train;
    if (train)
        return xent_forward_exp(m->lse, m->dlogits, m->rinv, m->logits, bt->tgt_out, c->pad_id,
                                c->label_smoothing, Nt, c->V);
    return xent_forward(m->lse, NULL, m->logits, bt->tgt_out, c->pad_id, c->label_smoothing, Nt,
                        c->V);
}

/* Backward of logits = h E^T and the loss in training, from the row
 * exponentials e (m->dlogits) and their inverse sums r (m->rinv): the
 * gradient of the logits is r e - q, q the smoothed target (1 - eps on the
 * target, eps_i = eps / (V - 1) elsewhere), so with s = grad_scale
 *   dh_r  = s (r_r (e E)_r - eps_i sum_v E_v - c E[y_r])           c = 1 - eps - eps_i
 *   dE   += s (e^T (r h) - eps_i 1 (sum_r h_r) - c scatter_r(y_r, h_r))
 * over non-pad rows: the (N, V) products stay the two sgemms, and the row
 * scaling and the target's terms are applied to (N, D) operands. */
static void output_backward(mmt_model *m, const mmt_batch *bt, float s, float *dh) {
    const model_config *c = &m->cfg;
    const int Nt = m->B * m->T, D = c->D, V = c->V;
    const float eps = c->label_smoothing, eps_i = V > 1 ? eps / (V - 1) : 0.0f;
    const float ct = 1.0f - eps - eps_i;
    const float *E = m->params + m->embed, *h = m->dec_out, *e = m->dlogits, *r = m->rinv;
    float *dE = m->grads + m->embed, *hs = m->dctx; /* (Nt, D) scratch */
    const int *y = bt->tgt_out;
    float colsum[D], hsum[D];

    /* dh = s r (e E) - s eps_i colsum(E) - s c E[y] on non-pad rows */
    for (int i = 0; i < D; i++) colsum[i] = 0.0f;
    for (int v = 0; v < V; v++)
        for (int i = 0; i < D; i++) colsum[i] += E[(size_t)v * D + i];
    linear_backward_into(dh, D, NULL, NULL, e, V, h, D, E, Nt, D, V);
#pragma omp parallel for schedule(static)
    for (int row = 0; row < Nt; row++) {
        float *d = dh + (size_t)row * D, *hr = hs + (size_t)row * D;
        const float *hh = h + (size_t)row * D;
        if (y[row] == c->pad_id) {
            for (int i = 0; i < D; i++) d[i] = hr[i] = 0.0f;
            continue;
        }
        const float *ey = E + (size_t)y[row] * D, sr = s * r[row];
        for (int i = 0; i < D; i++) {
            d[i] = sr * d[i] - s * eps_i * colsum[i] - s * ct * ey[i];
            hr[i] = sr * hh[i];
        }
    }

    /* dE += e^T (s r h) - s eps_i 1 hsum - s c scatter(y, h) */
    linear_backward(NULL, D, dE, NULL, e, V, hs, D, E, Nt, D, V);
    for (int i = 0; i < D; i++) hsum[i] = 0.0f;
    for (int row = 0; row < Nt; row++) {
        if (y[row] == c->pad_id) continue;
        const float *hh = h + (size_t)row * D;
        float *de = dE + (size_t)y[row] * D;
        for (int i = 0; i < D; i++) {
            hsum[i] += hh[i];
            de[i] -= s * ct * hh[i];
        }
    }
#pragma omp parallel for schedule(static)
    for (int v = 0; v < V; v++)
        for (int i = 0; i < D; i++) dE[(size_t)v * D + i] -= s * eps_i * hsum[i];
}

/* Swap the two gradient buffers. Each sublayer's backward overwrites its
 * dx (the skip path's gradient first, then the branch's added). */
static void flip(float **dy, float **dx) {
    float *t = *dy;
    *dy = *dx;
    *dx = t;
}

void model_backward(mmt_model *m, const mmt_batch *bt, float grad_scale) {
    const model_config *c = &m->cfg;
    const int B = m->B, S = m->S, T = m->T, D = c->D, Ns = B * S, Nt = B * T;
    const float *P = m->params;
    float *G = m->grads;
    m->grad_scale = grad_scale;
    m->logits_valid = 0; /* the buffer gets the logits' gradient */
    float *dy = m->g0, *dx = m->g1;

    /* loss and output projection */
    if (m->train) {
        output_backward(m, bt, grad_scale, dy);
    } else {
        xent_backward(m->dlogits, m->lse, m->logits, bt->tgt_out, c->pad_id, c->label_smoothing,
                      grad_scale, Nt, c->V);
        linear_backward_into(dy, D, G + m->embed, NULL, m->dlogits, c->V, m->dec_out, D,
                             P + m->embed, Nt, D, c->V);
    }
    const float *ylast = c->dec_layers ? m->da[c->dec_layers - 1].ff.y : m->tgt_emb;
    if (c->pre_norm) {
        layernorm_backward_into(dx, G + m->dec_norm_g, G + m->dec_norm_b, dy,
                                m->dec_fin.mean, m->dec_fin.rstd, ylast, P + m->dec_norm_g,
                                Nt, D);
        flip(&dy, &dx);
    }

    /* decoder layers, last to first; each sublayer maps dy to dx */
    zero_floats(m->denc, (size_t)Ns * D);
    for (int l = c->dec_layers - 1; l >= 0; l--) {
        dec_acts *A = &m->da[l];
        const float *x = l ? m->da[l - 1].ff.y : m->tgt_emb;
        self_off so = dec_self(&m->dec[l]);
        ffn_off fo = dec_ffn(&m->dec[l]);
        ffn_backward(m, &A->ff, A->hid, A->hid_d, dx, dy, A->ca.y, &fo, Nt,
                     seed_of(m, 1, l, SITE_FFN), c->penal_mask & PENAL_DEC_FFN, m->tgt_pad);
        flip(&dy, &dx);
        cross_attn_backward(m, A, dx, dy, A->sa.y, m->enc_out, &m->dec[l],
                            seed_of(m, 1, l, SITE_CROSS), c->penal_mask & PENAL_DEC_CROSS);
        flip(&dy, &dx);
        self_attn_backward(m, &A->sa, A->qkv, A->sa_probs, A->sa_ctx, dx, dy, x, &so, T, 1,
                           m->tgt_pad, seed_of(m, 1, l, SITE_SELF), c->penal_mask & PENAL_DEC_SELF);
        flip(&dy, &dx);
    }
    /* target embeddings: through their dropout */
    zero_floats(dx, (size_t)Nt * D);
    dropout_backward(dx, dy, (long)Nt * D, drop_p(m, c->dropout), seed_of(m, 2, 0, 1));
    embedding_backward(G + m->embed, dx, bt->tgt_in, c->pad_id, B, T, D);

    /* encoder: the image fusion, final norm (pre-norm), then layers, last to first */
    const float *denc = m->denc;
    if (c->fusion != FUSION_NONE) {
        image_fusion_backward(m, m->denc);
        denc = m->dfus_h;
    }
    const float *xlast = c->enc_layers ? m->ea[c->enc_layers - 1].ff.y : m->src_emb;
    if (c->pre_norm) {
        layernorm_backward_into(dy, G + m->enc_norm_g, G + m->enc_norm_b, denc,
                                m->enc_fin.mean, m->enc_fin.rstd, xlast, P + m->enc_norm_g,
                                Ns, D);
    } else {
        memcpy(dy, denc, (size_t)Ns * D * sizeof(float));
    }
    for (int l = c->enc_layers - 1; l >= 0; l--) {
        enc_acts *A = &m->ea[l];
        const float *x = l ? m->ea[l - 1].ff.y : m->src_emb;
        self_off so = enc_self(&m->enc[l]);
        ffn_off fo = enc_ffn(&m->enc[l]);
        ffn_backward(m, &A->ff, A->hid, A->hid_d, dx, dy, A->sa.y, &fo, Ns,
                     seed_of(m, 0, l, SITE_FFN), c->penal_mask & PENAL_ENC_FFN, m->src_pad);
        flip(&dy, &dx);
        self_attn_backward(m, &A->sa, A->qkv, A->probs, A->ctx, dx, dy, x, &so, S, 0,
                           m->src_pad, seed_of(m, 0, l, SITE_SELF), c->penal_mask & PENAL_ENC_SELF);
        flip(&dy, &dx);
    }
    /* source embeddings */
    zero_floats(dx, (size_t)Ns * D);
    dropout_backward(dx, dy, (long)Ns * D, drop_p(m, c->dropout), seed_of(m, 2, 0, 0));
    embedding_backward(G + m->embed, dx, bt->src, c->pad_id, B, S, D);
}

/* ============================================================ diagnostics */

static double sumsq_rows(const float *z, const uint8_t *pad, int N, int D) {
    double s = 0.0;
    for (int r = 0; r < N; r++) {
        if (pad[r]) continue;
        for (int i = 0; i < D; i++) s += (double)z[(size_t)r * D + i] * z[(size_t)r * D + i];
    }
    return s;
}

static double sub_sumsq(const mmt_model *m, const sub_acts *s, const uint8_t *pad, int N) {
    const float *z = m->cfg.penal_before_dropout ? s->a : s->z;
    return sumsq_rows(z, pad, N, m->cfg.D);
}

double model_penal_sumsq(const mmt_model *m) {
    const unsigned k = m->cfg.penal_mask;
    const int Ns = m->B * m->S, Nt = m->B * m->T;
    double s = 0.0;
    for (int l = 0; l < m->cfg.enc_layers; l++) {
        if (k & PENAL_ENC_SELF) s += sub_sumsq(m, &m->ea[l].sa, m->src_pad, Ns);
        if (k & PENAL_ENC_FFN) s += sub_sumsq(m, &m->ea[l].ff, m->src_pad, Ns);
    }
    for (int l = 0; l < m->cfg.dec_layers; l++) {
        if (k & PENAL_DEC_SELF) s += sub_sumsq(m, &m->da[l].sa, m->tgt_pad, Nt);
        if (k & PENAL_DEC_CROSS) s += sub_sumsq(m, &m->da[l].ca, m->tgt_pad, Nt);
        if (k & PENAL_DEC_FFN) s += sub_sumsq(m, &m->da[l].ff, m->tgt_pad, Nt);
    }
    if ((k & PENAL_FUSION) && m->cfg.fusion != FUSION_NONE)
        s += sumsq_rows(m->fus_z, m->src_pad, Ns, m->cfg.D);
    return s;
}

double model_step_flops(const mmt_model *m, const mmt_batch *b) {
    const double D = m->cfg.D, F = m->cfg.F, V = m->cfg.V;
    const double Ns = (double)b->B * b->S, Nt = (double)b->B * b->T;
    /* forward multiply-adds; backward does twice as many */
    double enc = Ns * (4 * D * D + 2 * D * F) + 2 * Ns * b->S * D;
    double dec = Nt * (6 * D * D + 2 * D * F) + Ns * 2 * D * D + 2 * Nt * b->T * D +
                 2 * Nt * b->S * D;
    double fwd = m->cfg.enc_layers * enc + m->cfg.dec_layers * dec + Nt * D * V;
    if (m->cfg.fusion != FUSION_NONE) {
        const double Ni = (double)b->B * m->cfg.img_regions;
        const double Hv = m->cfg.img_hidden;
        fwd += (Hv ? Ni * m->cfg.img_dim * Hv + Ni * Hv * D : Ni * m->cfg.img_dim * D) +
               Ns * 2 * D * D; /* regions; the gate */
        if (m->cfg.fusion == FUSION_SELECTIVE)
            fwd += Ns * D * D + Ni * 2 * D * D + 2 * Ns * m->cfg.img_regions * D;
    }
    return 2.0 * 3.0 * fwd;
}
