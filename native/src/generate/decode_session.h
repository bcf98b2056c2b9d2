// Step-level continuous batching: a decoding batch that rows join and leave between steps
// (serving). A row added between two steps is prefilled at the next step, together with the
// other rows added meanwhile, as one mixed batch (mixed_batch.h); its KV cache then joins the
// running batch's, both left-padded to the longer one and the padding masked out. A finished or
// cancelled row leaves the batch (its cache rows are dropped, and leading slots no row uses any
// more are trimmed). So every row sees exactly its own keys, values and positions, as it does
// alone, whatever joins or leaves around it: it computes the same tokens up to rounding (another
// batch shape rounds differently), a sampled row drawing from its own generator.
//
// Dimensions: B running rows, L cache slots, G key/value heads, D head dim, V vocabulary.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "generate/mixed_batch.h"
#include "models/backbone.h"

namespace ptune::generate {

/// A token a step produced for one row.
struct SessionToken {
  int64_t id = 0;     // the row's id (DecodeSession::add)
  int64_t token = 0;  // the token chosen at this step
  bool done = false;  // the row ended with it (EOS or its max_new_tokens); it has left the batch
};

/// One running decoding batch over a frozen decoder. Not thread-safe: one thread drives it.
class DecodeSession {
 public:
  /// model must outlive the session; eos_ids end a row when generated.
  DecodeSession(const models::Backbone& model, std::vector<int64_t> eos_ids);

  /// Builds the row now (its method is used only here, so it need not outlive this call) and
  /// queues it for the next step's prefill. Checks its tokens, settings (max_new_tokens >= 1)
  /// and positions. Returns its id (0, 1, 2, ... in order of adding).
  int64_t add(const MixedRow& row);

  /// Drops a queued or running row; false if no such row is queued or running.
  bool cancel(int64_t id);

  /// Queued and running rows.
  int64_t size() const { return static_cast<int64_t>(queued_.size() + running_.size()); }

  /// Prefills the queued rows (one mixed forward pass), picks the next token of every row, drops
  /// the rows that ended and runs one forward pass of the others' new tokens. Returns a token for
  /// every row that was queued or running, in the order of the batch (running, then queued).
  std::vector<SessionToken> step();

 private:
  struct Queued {
    int64_t id;
    GenerateOptions options;
    RowParts parts;
  };
  struct Running {
    int64_t id;
    GenerateOptions options;
    at::Generator generator;  // its own, seeded with options.seed: it draws what it draws alone
    int64_t produced = 0;     // tokens chosen so far
  };

  /// Prefills the queued rows and appends them to the running batch.
  void prefill();
  /// Keeps the running rows at `keep` (increasing indices into running_), in that order.
  void keepRows(const std::vector<int64_t>& keep);
  /// Storage for every row's remaining tokens, so each step writes its keys/values in place.
  void reserveForRemainingTokens();

  const models::Backbone& model_;
  at::Tensor eos_;                // (E) int64, on the host (compared with the chosen tokens there)
  int64_t next_id_ = 0;
  std::vector<Queued> queued_;
  std::vector<Running> running_;  // row b of the tensors below
  models::KvCache cache_;         // per layer (B, G, L, D); key_mask (B, L)
  at::Tensor next_position_;      // (B) int64: the position of each row's next token
  at::Tensor logits_;             // (B, V): each row's next-token logits
};

}  // namespace ptune::generate
