/* results.h - results.h5 writer (sim/results.c; layout in docs/simulator.md).
 * Internal to sim/: only the replay driver writes it, from one thread; each
 * call holds the process-wide HDF5 lock (traces/h5util.h). */
#ifndef EPLB_SIM_RESULTS_H
#define EPLB_SIM_RESULTS_H

#include "sim.h"

typedef struct eplb_sim_h5 eplb_sim_h5_t;

/* Create "<path>.tmp.<pid>" (or path, if it is such a name already:
 * eplb_tmp_name); eplb_sim_h5_finish renames it to path. */
eplb_status_t eplb_sim_h5_create(eplb_sim_h5_t **out, const char *path, int L,
                                 int E, int K, int64_t S, const char *model,
                                 const char *config_json, int nruns);
/* Group /runs/NNN with its attributes and the initial placement [L][P]. */
eplb_status_t eplb_sim_h5_add_run(eplb_sim_h5_t *h, int idx,
                                  const eplb_sim_run_cfg_t *cfg,
                                  const char *label, const char *policy,
                                  const int32_t *placement);
/* Append n steps: tokens [n][L][D], balancedness [n][L], times [n][4]. */
eplb_status_t eplb_sim_h5_append_steps(eplb_sim_h5_t *h, int idx, int64_t n, const int64_t *tokens,
                                       const float *bal, const double *times);
eplb_status_t eplb_sim_h5_append_events(eplb_sim_h5_t *h, int idx,
                                        const eplb_sim_event_t *ev, size_t n);
/* Append one decided placement [L][P] with the step it was decided at. */
eplb_status_t eplb_sim_h5_append_placement(eplb_sim_h5_t *h, int idx,
                                           int64_t step,
                                           const int32_t *placement);
/* Final placement and the summary numbers as attributes. */
eplb_status_t eplb_sim_h5_end_run(eplb_sim_h5_t *h, int idx,
                                  const eplb_sim_result_t *res,
                                  const int32_t *placement);
/* Close and rename to the final path; frees h in every case. */
eplb_status_t eplb_sim_h5_finish(eplb_sim_h5_t *h);
/* Close and delete the temporary file; frees h. */
void eplb_sim_h5_abort(eplb_sim_h5_t *h);

#endif
