/*
 * model_impl.h - the inside of mmt_model, shared by model.c (training
 * passes) and decode.c (incremental decoding). Nothing else includes it.
 */
#ifndef MMT_MODEL_IMPL_H
#define MMT_MODEL_IMPL_H

#include "fusion.h"
#include "model.h"

/* Offsets (in floats) of one layer's tensors: the same offsets index the
 * parameters and the gradients. */
typedef struct {
    size_t qkv_w, qkv_b, out_w, out_b; /* self-attention: (3D, D) (3D) (D, D) (D) */
    size_t n1_g, n1_b;                 /* its norm (D) */
    size_t fc1_w, fc1_b, fc2_w, fc2_b; /* FFN: (F, D) (F) (D, F) (D) */
    size_t n2_g, n2_b;                 /* its norm (D) */
} enc_off;

typedef struct {
    size_t qkv_w, qkv_b, out_w, out_b, n1_g, n1_b;        /* self-attention */
    size_t q_w, q_b, kv_w, kv_b, cout_w, cout_b;          /* cross-attention */
    size_t n2_g, n2_b;                                    /* its norm */
    size_t fc1_w, fc1_b, fc2_w, fc2_b, n3_g, n3_b;        /* FFN and its norm */
} dec_off;

/* What one residual sublayer keeps for backward. */
typedef struct {
    float *h;          /* (N, D) pre-norm: LN(x), the branch input; post-norm: NULL */
    float *mean, *rstd;/* (N) statistics of its layer norm */
    float *r;          /* (N, D) post-norm: x + z, the norm's input */
    float *a;          /* (N, D) branch output before dropout */
    float *z;          /* (N, D) branch output after dropout (== a without dropout) */
    float *y;          /* (N, D) sublayer output */
} sub_acts;

typedef struct {
    sub_acts sa, ff;
    float *qkv;        /* (N, 3D) */
    float *probs;      /* (B, H, S, S) */
    float *ctx;        /* (N, D) */
    float *hid;        /* (N, F) relu output */
    float *hid_d;      /* (N, F) after activation dropout (== hid without) */
} enc_acts;

typedef struct {
    sub_acts sa, ca, ff;
    float *qkv, *sa_probs, *sa_ctx;    /* (Nt, 3D) (B, H, T, T) (Nt, D) */
    float *q, *kv, *ca_probs, *ca_ctx; /* (Nt, D) (Ns, 2D) (B, H, T, S) (Nt, D) */
    float *hid, *hid_d;                /* (Nt, F) */
} dec_acts;

/* Offsets of the image pathway's tensors (fusion.h). */
typedef struct {
    size_t hid_w, hid_b;                /* img_hidden Hv > 0: (Hv, Dv) (Hv) */
    size_t proj_w, proj_b, pos;         /* (D, Dv or Hv) (D) (P, D) */
    size_t gt_w, gi_w, g_b;             /* gate: (D, D) (D, D) (D) */
    size_t q_w, q_b, kv_w, kv_b;        /* selective: (D, D) (D) (2D, D) (2D) */
    size_t st_mean, st_scale;           /* img_norm: (Dv) (Dv), untrained, last */
} fusion_off;

struct mmt_model {
    model_config cfg;
    int ntensors, cap_tensors;
    param_tensor *tensors;
    size_t nparams;
    size_t ntrained;        /* the leading trained values of params */
    float *params, *grads;
    size_t embed;           /* (V, D) offset */
    enc_off *enc;           /* (L_enc) */
    dec_off *dec;           /* (L_dec) */
    size_t enc_norm_g, enc_norm_b, dec_norm_g, dec_norm_b; /* pre-norm only */
    fusion_off fo;          /* with a fusion only */
    float *pe;              /* (max_positions, D) */

    /* activation arena, laid out for the current batch shape */
    float *arena;
    size_t arena_cap;       /* floats */
    int B, S, T;            /* shape of the last forward */
    uint64_t step;          /* step of the last forward (dropout seeds) */
    int train;
    float grad_scale;       /* of the running backward */
    uint8_t *src_pad, *tgt_pad; /* (B, S) (B, T): 1 where the id is pad */
    size_t pad_cap;
    float *src_emb, *tgt_emb;   /* (Ns, D) (Nt, D) after dropout */
    enc_acts *ea;
    dec_acts *da;
    float *enc_out;             /* (Ns, D) encoder output */
    sub_acts enc_fin, dec_fin;  /* pre-norm final norms (h, mean, rstd used) */
    /* image fusion (with a fusion only) */
    float *img_xd;              /* (B*P, Dv) image input after dropout */
    float *img_h;               /* (B*P, Hv) hidden layer (ReLU output; img_hidden only) */
    float *img_v;               /* (B*P, D) projected regions */
    float *img_g;               /* (B, D) pooled (gated) */
    fusion_acts fa;             /* lam, q, kv, probs, himg */
    const float *fus_h;         /* (Ns, D) encoder output before the fusion */
    float *fus_z, *fus_y;       /* (Ns, D) fusion branch and fused output */
    float *dimg_v, *dimg_g, *dfus_z, *dfus_h; /* backward scratch */
    float *dimg_h;              /* (B*P, Hv) backward scratch (img_hidden only) */
    float *dec_out;             /* (Nt, D) */
    float *logits, *lse, *dlogits; /* (Nt, V) (Nt) (Nt, V), dlogits the same buffer:
                                      a training forward leaves exp(logits - row max)
                                      there (see xent_forward_exp), a backward the
                                      logits' gradient */
    int logits_valid;              /* the buffer holds the last forward's logits */
    float *logits_copy;            /* logits recomputed for model_logits, or NULL */
    size_t logits_copy_cap;
    float *rinv;                   /* (Nt) 1 / row sums of that */
    /* backward scratch */
    float *g0, *g1, *dr, *dA, *dh, *dctx, *dqkv, *dhid, *dhid2, *denc, *dkv;
};

/* Run the encoder alone (no dropout) on src (B, S) and, with a fusion, the
 * image regions img (B, P, Dv); the output (B*S, D) lives in the arena
 * until the next forward. */
const float *model_encode(mmt_model *m, const int *src, const float *img, int B, int S);

#endif
