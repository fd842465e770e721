/* The phases of the experiment program (docs/experiments.md).  Each writes
 * its records to runs.jsonl, its summary under its name in summary.json and
 * a section of report.md with plots; the models are those loaded in the run
 * (r->models). */
#ifndef KVL_EXPERIMENTS_PHASES_H
#define KVL_EXPERIMENTS_PHASES_H

#include "experiments/report.h"

/* Phase 1: cache geometry, bytes per token, cache size against length,
 * per layer / kv head norms of K and V. */
kvl_status kvl_exp_phase_structure(kvl_exp_run *r, kvl_error *err);
/* Phase 1.5: the cognitive-mode battery with statistics (first model). */
kvl_status kvl_exp_phase_modes(kvl_exp_run *r, kvl_error *err);
/* Phase 2a: cache transplant within one model (first model). */
kvl_status kvl_exp_phase_transfer(kvl_exp_run *r, kvl_error *err);
/* Phase 3: persona identity signatures. */
kvl_status kvl_exp_phase_identity(kvl_exp_run *r, kvl_error *err);
/* The battery across models, normalised per model. */
kvl_status kvl_exp_phase_sweep(kvl_exp_run *r, kvl_error *err);

#endif
