// The native prompt-tuning step without the JVM: times training micro-steps of a Llama-family
// model (stories260k or bench/make_model.py's shapes) through the public façade and, with
// --trace FILE, records libtorch's profiler over the timed steps (a Chrome trace that
// bench/profile_report.py sums per op). Batches are random token ids, every row full, labels
// on every token, as bench/run.sh's data after collation.
//
//   ptune_step_profile MODEL_DIR [--batch 8] [--seq 256] [--virtual 20] [--steps 20]
//                      [--warmup 3] [--threads N] [--trace FILE]
//
// Prints one JSON line: {"step_s_median":…,"step_s_min":…,"tokens_per_s":…,…}.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "ptune/ptune.h"

namespace {

/// The Llama-family fields of a config.json (the benchmark's models only: no rope scaling,
/// no sliding window).
ptune::ModelSpec llamaSpec(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) throw std::runtime_error("cannot read " + dir + "/config.json");
  const nlohmann::json c = nlohmann::json::parse(in);
  ptune::ModelSpec s{};
  s.family = static_cast<int32_t>(ptune::ModelFamily::kLlama);
  s.activation = static_cast<int32_t>(ptune::Activation::kSilu);
  s.vocab_size = c.at("vocab_size");
  s.hidden_size = c.at("hidden_size");
  s.intermediate_size = c.at("intermediate_size");
  s.num_hidden_layers = c.at("num_hidden_layers");
  s.num_attention_heads = c.at("num_attention_heads");
  s.num_key_value_heads = c.value("num_key_value_heads", s.num_attention_heads);
  s.head_dim = c.value("head_dim", s.hidden_size / s.num_attention_heads);
  s.max_position_embeddings = c.at("max_position_embeddings");
  s.norm_eps = c.value("rms_norm_eps", 1e-6);
  s.rope_theta = c.value("rope_theta", 10000.0);
  s.tie_word_embeddings = c.value("tie_word_embeddings", false);
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: ptune_step_profile MODEL_DIR [--batch B] [--seq T] [--virtual P] [--steps N] "
                 "[--warmup W] [--threads N] [--trace FILE]\n";
    return 2;
  }
  const std::string dir = argv[1];
  int64_t B = 8, T = 256, P = 20, steps = 20, warmup = 3, threads = 0;
  std::string trace;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch") B = std::stoll(value);
    else if (flag == "--seq") T = std::stoll(value);
    else if (flag == "--virtual") P = std::stoll(value);
    else if (flag == "--steps") steps = std::stoll(value);
    else if (flag == "--warmup") warmup = std::stoll(value);
    else if (flag == "--threads") threads = std::stoll(value);
    else if (flag == "--trace") trace = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  try {
    if (threads > 0) ptune::setIntraOpThreads(static_cast<int32_t>(threads));
    const ptune::ModelSpec spec = llamaSpec(dir);
    ptune::Model model(dir.c_str(), spec);
    ptune::PromptSpec ps{};
    ps.method = static_cast<int32_t>(ptune::PromptMethod::kPromptTuning);
    ps.num_virtual_tokens = P;
    ps.seed = 0;
    ptune::PromptModel prompt(model, ps, nullptr, 0);
    ptune::TrainOptions o{};
    o.learning_rate = 1e-2;
    o.weight_decay = 0.01;
    o.adam_beta1 = 0.9;
    o.adam_beta2 = 0.999;
    o.adam_epsilon = 1e-8;
    o.max_grad_norm = 1.0;
    o.grad_accum = 1;
    o.total_steps = warmup + steps;
    o.schedule = static_cast<int32_t>(ptune::LrSchedule::kLinear);
    ptune::PromptTrainer trainer(model, prompt, o);

    std::mt19937_64 rng(0);
    std::uniform_int_distribution<int64_t> token(3, spec.vocab_size - 1);
    std::vector<int64_t> ids(static_cast<size_t>(B * T)), mask(ids.size(), 1), labels(ids.size());
    std::vector<double> times;
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    for (int64_t step = 0; step < warmup + steps; ++step) {
      for (auto& id : ids) id = token(rng);
      labels = ids;
      if (step == warmup && !trace.empty()) {
        profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
      }
      const auto start = std::chrono::steady_clock::now();
      trainer.trainMicroBatch(ids.data(), mask.data(), labels.data(), B, T);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (step >= warmup) times.push_back(seconds);
    }
    profile.reset();  // writes the trace
    const double med = median(times);
    nlohmann::json out = {{"model", dir},
                          {"batch", B},
                          {"seq", T},
                          {"virtual_tokens", P},
                          {"threads", ptune::intraOpThreads()},
                          {"steps", steps},
                          {"step_s_median", med},
                          {"step_s_min", *std::min_element(times.begin(), times.end())},
                          {"step_s_max", *std::max_element(times.begin(), times.end())},
                          {"tokens_per_s", static_cast<double>(B * T) / med}};
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "ptune_step_profile: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
