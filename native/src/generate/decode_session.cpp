#include "generate/decode_session.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <utility>

#include "core/check.h"
#include "generate/generation.h"

namespace ptune::generate {

DecodeSession::DecodeSession(const models::Backbone& model, std::vector<int64_t> eos_ids)
    : model_(model), eos_(at::tensor(eos_ids, at::TensorOptions().dtype(at::kLong))) {
  PTUNE_CHECK(model.causal(), "generation needs a decoder; this ", models::familyName(model.family()),
              " model is an encoder (use its logits or hidden states)");
  model.requireHead();
}

int64_t DecodeSession::add(const MixedRow& row) {
  const std::string what = "row " + std::to_string(next_id_);
  checkOptions(row.options, what.c_str());
  PTUNE_CHECK(row.options.max_new_tokens >= 1, what, ": a decoding session generates at least one token per row, ",
              "got max_new_tokens = ", row.options.max_new_tokens);
  Queued q{next_id_, row.options, buildRow(model_, row, next_id_)};
  queued_.push_back(std::move(q));
  return next_id_++;
}

bool DecodeSession::cancel(int64_t id) {
  const auto queued = std::find_if(queued_.begin(), queued_.end(), [&](const Queued& q) { return q.id == id; });
  if (queued != queued_.end()) {
    queued_.erase(queued);
    return true;
  }
  std::vector<int64_t> keep;
  for (size_t b = 0; b < running_.size(); ++b) {
    if (running_[b].id != id) keep.push_back(static_cast<int64_t>(b));
  }
  if (keep.size() == running_.size()) return false;
  keepRows(keep);
  return true;
}

void DecodeSession::prefill() {
  std::vector<RowParts> parts;
  parts.reserve(queued_.size());
  for (Queued& q : queued_) parts.push_back(std::move(q.parts));
  prompt::PreparedInput in = assembleMixedInput(model_, parts);
  parts.clear();
  const at::Tensor hidden = model_.forward(in.input, &in.cache);  // (B', W, C)
  const at::Tensor logits = model_.requireHead().logits(hidden.select(1, -1));  // (B', V)
  const at::Tensor positions = in.input.positions.select(1, -1) + 1;           // (B')

  // The joined cache: old rows then new ones, each left-padded (zeros, masked out) to the longer.
  const models::KvCache& fresh = in.cache;
  const int64_t B_old = static_cast<int64_t>(running_.size()), B_new = static_cast<int64_t>(queued_.size());
  const int64_t L_old = running_.empty() ? 0 : cache_.length(), L_new = fresh.length();
  const int64_t L = std::max(L_old, L_new);
  int64_t remaining = 0;  // the most slots any row still appends (its last token is never fed back)
  for (const Running& r : running_) remaining = std::max(remaining, r.options.max_new_tokens - r.produced - 1);
  for (const Queued& q : queued_) remaining = std::max(remaining, q.options.max_new_tokens - 1);
  const int64_t capacity = L + remaining;

  models::KvCache joined;
  for (size_t l = 0; l < fresh.keys.size(); ++l) {
    for (bool is_key : {true, false}) {
      const at::Tensor& young = is_key ? fresh.keys[l] : fresh.values[l];  // (B', G, L_new, D)
      const int64_t G = young.size(1), D = young.size(3);
      at::Tensor storage = at::empty({B_old + B_new, G, capacity, D}, young.options());  // (B, G, capacity, D)
      storage.narrow(2, 0, L).zero_();
      if (B_old > 0) {
        const at::Tensor& old = is_key ? cache_.keys[l] : cache_.values[l];  // (B_old, G, L_old, D)
        storage.narrow(0, 0, B_old).narrow(2, L - L_old, L_old).copy_(old);
      }
      storage.narrow(0, B_old, B_new).narrow(2, L - L_new, L_new).copy_(young);
      (is_key ? joined.keys : joined.values).push_back(storage.narrow(2, 0, L));
      (is_key ? joined.key_storage : joined.value_storage).push_back(std::move(storage));
    }
  }
  joined.key_mask = at::zeros({B_old + B_new, L}, fresh.key_mask.options());  // (B, L)
  if (B_old > 0) joined.key_mask.narrow(0, 0, B_old).narrow(1, L - L_old, L_old).copy_(cache_.key_mask);
  joined.key_mask.narrow(0, B_old, B_new).narrow(1, L - L_new, L_new).copy_(fresh.key_mask);
  cache_ = std::move(joined);
  logits_ = B_old > 0 ? at::cat({logits_, logits}, 0) : logits;
  next_position_ = B_old > 0 ? at::cat({next_position_, positions}, 0) : positions;
  for (Queued& q : queued_) {
    running_.push_back(Running{q.id, q.options, samplingGenerator(model_.device(), q.options.seed), 0});
  }
  queued_.clear();
}

void DecodeSession::keepRows(const std::vector<int64_t>& keep) {
  if (keep.empty()) {
    running_.clear();
    cache_ = models::KvCache{};
    logits_ = at::Tensor();
    next_position_ = at::Tensor();
    return;
  }
  const at::Tensor index = at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(model_.device());
  // Leading slots that no kept row attends any more (their own padding) are trimmed.
  const at::Tensor mask = cache_.key_mask.index_select(0, index);  // (B, L)
  const int64_t L = mask.size(1);
  const at::Tensor used = mask.any(0);  // (L)
  const at::Tensor slots = used.nonzero().to(at::kCPU);  // (n, 1): the slots some kept row attends
  const int64_t first = slots.size(0) > 0 ? slots[0][0].item<int64_t>() : 0;
  for (size_t l = 0; l < cache_.keys.size(); ++l) {
    if (l < cache_.key_storage.size()) {
      at::Tensor ks = cache_.key_storage[l].index_select(0, index);
      at::Tensor vs = cache_.value_storage[l].index_select(0, index);
      cache_.key_storage[l] = ks.narrow(2, first, ks.size(2) - first);
      cache_.value_storage[l] = vs.narrow(2, first, vs.size(2) - first);
      cache_.keys[l] = cache_.key_storage[l].narrow(2, 0, L - first);
      cache_.values[l] = cache_.value_storage[l].narrow(2, 0, L - first);
    } else {
      cache_.keys[l] = cache_.keys[l].index_select(0, index).narrow(2, first, L - first);
      cache_.values[l] = cache_.values[l].index_select(0, index).narrow(2, first, L - first);
    }
  }
  cache_.key_mask = mask.narrow(1, first, L - first);
  logits_ = logits_.index_select(0, index);
  next_position_ = next_position_.index_select(0, index);
  std::vector<Running> kept;
  kept.reserve(keep.size());
  for (int64_t b : keep) kept.push_back(std::move(running_[static_cast<size_t>(b)]));
  running_ = std::move(kept);
}

std::vector<SessionToken> DecodeSession::step() {
  if (!queued_.empty()) prefill();
  const int64_t B = static_cast<int64_t>(running_.size());
  if (B == 0) return {};
  bool all_greedy = true;
  for (const Running& r : running_) all_greedy = all_greedy && r.options.greedy;
  at::Tensor next;  // (B) int64
  if (all_greedy) {
    next = logits_.argmax(-1);
  } else {
    std::vector<at::Tensor> picked;
    picked.reserve(running_.size());
    for (int64_t b = 0; b < B; ++b) {
      Running& r = running_[static_cast<size_t>(b)];
      picked.push_back(selectNextTokens(logits_.narrow(0, b, 1), r.options, r.generator));
    }
    next = at::cat(picked, 0);
  }
  const at::Tensor host = next.to(at::kCPU).contiguous();
  const int64_t* tokens = host.data_ptr<int64_t>();
  const int64_t* eos = eos_.data_ptr<int64_t>();
  std::vector<SessionToken> out;
  out.reserve(running_.size());
  std::vector<int64_t> keep;
  for (int64_t b = 0; b < B; ++b) {
    Running& r = running_[static_cast<size_t>(b)];
    const int64_t token = tokens[b];
    r.produced += 1;
    const bool done = std::find(eos, eos + eos_.numel(), token) != eos + eos_.numel() ||
                      r.produced >= r.options.max_new_tokens;
    out.push_back(SessionToken{r.id, token, done});
    if (!done) keep.push_back(b);
  }
  if (static_cast<int64_t>(keep.size()) < B) {
    if (!keep.empty()) {
      next = next.index_select(0, at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(next.device()));
    }
    keepRows(keep);
  }
  if (running_.empty()) return out;
  // The next tokens of the rows that go on, one position each.
  const int64_t kept = static_cast<int64_t>(running_.size());
  models::BackboneInput input;
  input.embeds = model_.embed(next.view({kept, 1}));  // (B, 1, C)
  input.positions = next_position_.view({kept, 1});   // (B, 1)
  input.key_mask = at::ones({kept, 1}, cache_.key_mask.options());
  const at::Tensor hidden = model_.forward(input, &cache_);  // (B, 1, C)
  logits_ = model_.requireHead().logits(hidden.select(1, -1));  // (B, V)
  next_position_ = next_position_ + 1;
  return out;
}

}  // namespace ptune::generate
