/*
 * train.h - the trainer behind mmt-train: from a recipe to a trained,
 * validated, checkpointed model; rerunning the same command resumes.
 */
#ifndef MMT_TRAIN_H
#define MMT_TRAIN_H

#include "common.h"

typedef struct {
    const char *recipe;      /* recipe file */
    const char *const *sets; /* "key=value" overrides */
    int nsets;
    int threads;             /* > 0 overrides the recipe's threads */
} train_args;

/* Run (or resume) the training the recipe describes. Returns MMT_OK when it
 * ran to its end, MMT_ERR with st filled on bad input or a diverged run. */
int train_run(const train_args *a, mmt_status *st);

#endif
