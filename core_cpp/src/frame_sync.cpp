#include "flashfas/frame_sync.hpp"

#include <algorithm>
#include <string>

#include "flashfas/errors.hpp"

namespace flashfas {

void assign_frames(const std::int64_t* frame_times_us, int frame_count, std::int64_t exposure_us,
                   std::int64_t readout_us, const std::int64_t* flash_onsets_us, int state_count,
                   std::int64_t latency_us, std::int64_t state_duration_us, std::int64_t* chosen) {
  // Integration span of one frame over all rows (rolling shutter, docs/ARCHITECTURE.md §1 step 4).
  const std::int64_t span_us = readout_us + exposure_us;
  int first_candidate = 0;  // frames and windows are both sorted: sweep once
  for (int s = 0; s < state_count; ++s) {
    const std::int64_t window_start = flash_onsets_us[s] + latency_us;
    const std::int64_t window_end =
        (s + 1 < state_count ? flash_onsets_us[s + 1] : flash_onsets_us[s] + state_duration_us) +
        latency_us;
    std::int64_t best_margin = -1;
    int best = -1;
    while (first_candidate < frame_count && frame_times_us[first_candidate] < window_start) {
      ++first_candidate;
    }
    for (int t = first_candidate; t < frame_count; ++t) {
      const std::int64_t start = frame_times_us[t];
      const std::int64_t end = start + span_us;
      if (end > window_end) break;  // later frames end later still
      const std::int64_t margin = std::min(start - window_start, window_end - end);
      if (margin > best_margin) {
        best_margin = margin;
        best = t;
      }
    }
    chosen[s] = best;
  }
}

}  // namespace flashfas
