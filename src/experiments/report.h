/* The results folder of one run: runs.jsonl (one record per generation or
 * measurement, written as they come), summary.json (per-phase summaries and
 * the provenance) and report.md (sections written by the phases into a
 * memory buffer, assembled after the provenance at the end), with plots
 * under plots/.  Not thread-safe: phases write from the calling thread. */
#ifndef KVL_EXPERIMENTS_REPORT_H
#define KVL_EXPERIMENTS_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "experiments/config.h"
#include "experiments/exp_model.h"
#include "experiments/progress.h"
#include "kvlab.h"

typedef struct kvl_exp_run {
    const kvl_exp_config *cfg;
    const kvl_run_options *opt;
    int32_t n_threads;
    char *dir;        /* results folder (owned)                      */
    FILE *runs;       /* runs.jsonl                                   */
    char *body;       /* report sections (open_memstream buffer)      */
    size_t body_len;
    FILE *md;         /* writes into body                             */
    json_t *summary;  /* phase name -> summary object                 */
    kvl_exp_progress progress;
    /* Models loaded once for the whole run (config order). */
    int32_t n_models;
    kvl_exp_model models[KVL_EXP_MAX_MODELS];
    /* Prompt-level battery data of models[0] when the modes phase ran, so
     * that the sweep does not generate it again (owned, may be NULL). */
    struct kvl_exp_battery_data *modes_data;
} kvl_exp_run;

/* Creates the folder (and plots/) and opens the files. */
kvl_status kvl_exp_run_open(kvl_exp_run *r, const kvl_exp_config *cfg,
                            const kvl_run_options *opt, const char *dir,
                            kvl_error *err);
/* Appends one record (a JSON object; the reference is stolen) to
 * runs.jsonl, with "phase" set. */
kvl_status kvl_exp_record(kvl_exp_run *r, const char *phase, json_t *rec,
                          kvl_error *err);
/* "<dir>/plots/<name>.png" into buf; returns buf. */
const char *kvl_exp_plot_path(const kvl_exp_run *r, const char *name,
                              char *buf, size_t cap);
/* Writes summary.json and report.md (provenance first, then the body) and
 * closes everything; *report_path receives report.md's path (kvl_free). */
kvl_status kvl_exp_run_finish(kvl_exp_run *r, json_t *provenance,
                              char **report_path, kvl_error *err);
/* Releases what remains (after finish or on failure). */
void kvl_exp_run_close(kvl_exp_run *r);

/* A markdown-safe copy of text for a table cell (| and newlines escaped,
 * cut to max bytes at a character boundary with an ellipsis). */
void kvl_exp_md_cell(FILE *f, const char *text, size_t max);

#endif
