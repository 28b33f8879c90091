/*
 * model.h - the Transformer encoder-decoder with penal connections.
 *
 * Parameters live in one float buffer described by a table of named tensors
 * (name, shape, offset); gradients mirror it. Activations live in an arena
 * that grows only when a batch is larger than every earlier one.
 *
 * Training step:
 *     model_zero_grads(m);
 *     xent_result r = model_forward(m, &batch, 1, step);
 *     model_backward(m, &batch, 1.0f / r.ntokens);
 * model_backward scales the gradient of the summed loss by grad_scale; the
 * penal connection adds tau * grad_scale * z to each chosen branch, which is
 * the gradient of grad_scale * (loss + tau/2 * sum ||z||^2).
 */
#ifndef MMT_MODEL_H
#define MMT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "kernels.h"

/* Sublayers that can carry the penal connection (bits of penal_mask). */
enum {
    PENAL_ENC_SELF = 1,
    PENAL_ENC_FFN = 2,
    PENAL_DEC_SELF = 4,
    PENAL_DEC_CROSS = 8,
    PENAL_DEC_FFN = 16,
    PENAL_ALL = 31,    /* the text sublayers: the default set */
    PENAL_FUSION = 32  /* the image fusion's residual, opt-in */
};

/* How image features enter the model (see fusion.h). */
enum { FUSION_NONE = 0, FUSION_GATED = 1, FUSION_SELECTIVE = 2 };

typedef struct {
    int enc_layers, dec_layers; /* L for encoder and decoder */
    int D, F, H, V;             /* width, FFN width, heads, vocabulary */
    int max_positions;          /* longest sequence the position table covers */
    int pre_norm;               /* 0: post-norm (add, then norm); 1: pre-norm */
    float dropout;              /* on embeddings and every sublayer output */
    float attn_dropout;         /* on attention probabilities */
    float act_dropout;          /* on the FFN's hidden activation */
    float label_smoothing;      /* eps of the label-smoothed cross entropy */
    int pad_id, bos_id, eos_id, unk_id;
    float tau;                  /* penal connection strength; 0 = baseline */
    unsigned penal_mask;        /* PENAL_* bits: sublayers that carry it */
    int penal_before_dropout;   /* 1: penalise the branch before its dropout */
    uint64_t seed;              /* initialisation and dropout seed */
    /* the image pathway (fusion != FUSION_NONE) */
    int fusion;                 /* FUSION_* */
    int img_dim, img_regions;   /* Dv and P of the image input (B, P, Dv) */
    float img_dropout;          /* on the image input */
    int img_positions;          /* learned (P, D) positions added to the projected regions */
    int img_hidden;             /* 0: each region projected linearly to D; > 0: first through
                                   a hidden layer of this width with ReLU */
    int img_norm;               /* 1: each image value standardised, (x - mean) * scale,
                                   with the training set's statistics, kept as the
                                   untrained tensors img.stats.mean and img.stats.scale */
    int img_size, img_patch;    /* PNG input: resized to size x size, cut into patches;
                                   0 when the input is stored features */
} model_config;

/* Defaults of transformer-tiny (the Multi30k reference). */
model_config model_config_default(void);
/* Read a preset (models/NAME.json) into cfg, keys not named keep their
 * value; an unknown key or wrong type is an error naming file and key. */
int model_config_load(model_config *cfg, const char *path, mmt_status *st);
/* Apply one JSON object (already parsed) onto cfg; where names the source. */
struct cJSON;
int model_config_apply(model_config *cfg, const struct cJSON *obj, const char *where,
                       mmt_status *st);

/* The configuration as a JSON object (keys of the presets, plus vocab_size
 * and the special ids) that model_config_apply reads back; caller frees. */
char *model_config_to_json(const model_config *cfg);

typedef struct {
    char name[64];
    int ndim, shape[4];
    size_t offset, size; /* in floats, into params / grads */
} param_tensor;

/* A batch: token ids, right-padded with pad_id. tgt_in starts with bos;
 * tgt_out is tgt_in shifted left and ends with eos. img holds the image
 * regions of each row when the model has a fusion (NULL otherwise). */
typedef struct {
    int B, S, T;
    const int *src;     /* (B, S) */
    const int *tgt_in;  /* (B, T) */
    const int *tgt_out; /* (B, T) */
    const float *img;   /* (B, P, Dv) or NULL */
} mmt_batch;

typedef struct mmt_model mmt_model;

/* Build a model with freshly initialised parameters (xavier-uniform linear
 * weights, N(0, D^-1/2) embeddings, zero biases, unit norms). */
mmt_model *model_create(const model_config *cfg);
void model_free(mmt_model *m);

const model_config *model_cfg(const mmt_model *m);
/* Penal settings may change between steps (tests compare tau = 0 and tau > 0). */
void model_set_penal(mmt_model *m, float tau, unsigned mask, int before_dropout);

/* The parameter table: count, entries, and the flat buffers. */
int model_num_tensors(const mmt_model *m);
const param_tensor *model_tensor(const mmt_model *m, int i);
const param_tensor *model_find_tensor(const mmt_model *m, const char *name);
size_t model_num_params(const mmt_model *m);
/* The leading model_num_trained(m) of the model_num_params(m) values are
 * trained; the rest (the image statistics, when img_norm is on) are data
 * the optimiser must leave alone. */
size_t model_num_trained(const mmt_model *m);
float *model_params(mmt_model *m);
float *model_grads(mmt_model *m);
void model_zero_grads(mmt_model *m);

/* Forward pass over a batch. train = 1 applies dropout (seeded by cfg.seed
 * and step) and keeps what backward needs. Returns the summed loss, NLL and
 * target-token count; never includes the penalty. */
xent_result model_forward(mmt_model *m, const mmt_batch *b, int train, uint64_t step);
/* Backward of the last forward: grads += grad_scale * d(loss + penalty). */
void model_backward(mmt_model *m, const mmt_batch *b, float grad_scale);

/* Logits of the last forward, (B*T, V), row-major. After a training forward
 * or a backward their buffer holds other values, and they are recomputed
 * (one more product) into a buffer of their own. */
const float *model_logits(mmt_model *m);
/* Sum over the chosen sublayers of ||z||^2 in the last forward (z as the
 * penal connection sees it): the penalty is tau/2 times this. */
double model_penal_sumsq(const mmt_model *m);
/* Bytes held by the activation arena. */
size_t model_arena_bytes(const mmt_model *m);

/* Multiply-adds of the matrix products of one forward+backward on a batch,
 * as FLOPs (2 per multiply-add); for benchmarks. */
double model_step_flops(const mmt_model *m, const mmt_batch *b);

#endif
