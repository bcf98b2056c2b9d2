// The native prompt-tuning step without the JVM: times training micro-steps of a Llama-family or
// GPT-2 model (stories260k, bench/make_model.py's Llama, Qwen2 or GPT-2 shapes) through the public façade and,
// with --trace FILE, records libtorch's profiler over the timed steps (a Chrome trace that
// bench/profile_report.py sums per op). Batches are random token ids, every row full, labels
// on every token, as bench/run.sh's data after collation.
//
//   ptune_step_profile MODEL_DIR [--batch 8] [--seq 256] [--virtual 20] [--steps 20]
//                      [--warmup 3] [--threads N] [--trace FILE]
//                      [--device cpu|cuda|cuda:N] [--dtype fp32|bf16|fp16]
//                      [--method prompt-tuning|prefix-tuning]
//
// Prints one JSON line: {"step_s_median":…,"step_s_min":…,"tokens_per_s":…,"device":…,
// "dtype":…,"method":…,"peak_cuda_mib":…,"peak_rss_mib":…,…}. peak_cuda_mib is libtorch's
// caching allocator's peak of allocated bytes over the whole run (torch.cuda.max_memory_allocated),
// null on CPU or in a build without CUDA (PTUNE_STEP_PROFILE_CUDA, set by the top-level
// CMakeLists.txt when PTUNE_WITH_CUDA is on).
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#ifdef PTUNE_STEP_PROFILE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

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

/// The fields of a GPT-2 config.json (bench/make_model.py --model-type gpt2: gelu_new, tied head),
/// read as io.ptune.model.Gpt2Architecture reads them.
ptune::ModelSpec gpt2Spec(const nlohmann::json& c, const std::string& dir) {
  const std::string act = c.value("activation_function", std::string("gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast") {
    throw std::runtime_error("activation_function '" + act + "' in " + dir + "/config.json: ptune_step_profile reads the tanh GELUs");
  }
  ptune::ModelSpec s{};
  s.family = static_cast<int32_t>(ptune::ModelFamily::kGpt2);
  s.activation = static_cast<int32_t>(ptune::Activation::kGeluTanh);
  s.vocab_size = c.at("vocab_size");
  s.hidden_size = c.at("n_embd");
  s.intermediate_size = c.contains("n_inner") && !c["n_inner"].is_null() ? c["n_inner"].get<int64_t>() : 4 * s.hidden_size;
  s.num_hidden_layers = c.at("n_layer");
  s.num_attention_heads = c.at("n_head");
  s.num_key_value_heads = s.num_attention_heads;
  s.head_dim = s.hidden_size / s.num_attention_heads;
  s.max_position_embeddings = c.value("n_positions", 1024);
  s.norm_eps = c.value("layer_norm_epsilon", 1e-5);
  s.tie_word_embeddings = true;
  s.first_window_layer = s.num_hidden_layers;
  return s;
}

/// The fields of a config.json: model_type llama or qwen2 (the benchmark's models only: no rope
/// scaling, no sliding window), read as io.ptune.model.LlamaArchitecture reads them, or gpt2.
ptune::ModelSpec readSpec(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) throw std::runtime_error("cannot read " + dir + "/config.json");
  const nlohmann::json c = nlohmann::json::parse(in);
  const std::string type = c.value("model_type", std::string("llama"));
  if (type == "gpt2") return gpt2Spec(c, dir);
  if (type != "llama" && type != "qwen2") {
    throw std::runtime_error("model_type '" + type + "' in " + dir + "/config.json: ptune_step_profile reads llama, qwen2 and gpt2");
  }
  if (c.value("use_sliding_window", false)) {
    throw std::runtime_error(dir + "/config.json uses a sliding window; ptune_step_profile reads full attention only");
  }
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
  // transformers 5 writes rope_theta into rope_parameters.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    s.rope_theta = c["rope_parameters"].value("rope_theta", s.rope_theta);
  }
  s.tie_word_embeddings = c.value("tie_word_embeddings", false);
  // Qwen2 has q/k/v biases by construction and no attention_bias key (LlamaArchitecture).
  s.attention_bias = c.value("attention_bias", type == "qwen2");
  s.mlp_bias = c.value("mlp_bias", false);
  s.first_window_layer = s.num_hidden_layers;  // no sliding window
  return s;
}

/// "cpu", "cuda", "cuda:N" -> LoadOptions' device fields.
void parseDevice(const std::string& v, ptune::LoadOptions& o) {
  if (v == "cpu") {
    o.device_type = static_cast<int32_t>(ptune::DeviceType::kCpu);
    o.device_index = 0;
  } else if (v == "cuda" || v.rfind("cuda:", 0) == 0) {
    o.device_type = static_cast<int32_t>(ptune::DeviceType::kCuda);
    o.device_index = v == "cuda" ? 0 : std::stoi(v.substr(5));
  } else {
    throw std::invalid_argument("--device " + v + ": expected cpu, cuda or cuda:N");
  }
}

int32_t parseDtype(const std::string& v) {
  if (v == "fp32") return static_cast<int32_t>(ptune::DType::kFp32);
  if (v == "bf16") return static_cast<int32_t>(ptune::DType::kBf16);
  if (v == "fp16") return static_cast<int32_t>(ptune::DType::kFp16);
  throw std::invalid_argument("--dtype " + v + ": expected fp32, bf16 or fp16");
}

int32_t parseMethod(const std::string& v) {
  if (v == "prompt-tuning") return static_cast<int32_t>(ptune::PromptMethod::kPromptTuning);
  if (v == "prefix-tuning") return static_cast<int32_t>(ptune::PromptMethod::kPrefixTuning);
  throw std::invalid_argument("--method " + v + ": expected prompt-tuning or prefix-tuning");
}

/// Waits for the GPU's queued work (a no-op on CPU): the step already reads its loss back to the
/// host, which synchronises, but the clock must not depend on that.
void synchronize(const ptune::LoadOptions& o) {
#ifdef PTUNE_STEP_PROFILE_CUDA
  if (o.device_type == static_cast<int32_t>(ptune::DeviceType::kCuda)) torch::cuda::synchronize(o.device_index);
#else
  (void)o;
#endif
}

/// Peak bytes allocated by libtorch's CUDA caching allocator on the device, in MiB; null on CPU.
nlohmann::json peakCudaMib(const ptune::LoadOptions& o) {
#ifdef PTUNE_STEP_PROFILE_CUDA
  if (o.device_type == static_cast<int32_t>(ptune::DeviceType::kCuda)) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(o.device_index));
    // [0] is StatType::AGGREGATE (all pools), what torch.cuda.max_memory_allocated reports.
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#else
  (void)o;
#endif
  return nullptr;
}

/// The process's peak resident set (getrusage: KiB on Linux), in MiB.
double peakRssMib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: ptune_step_profile MODEL_DIR [--batch B] [--seq T] [--virtual P] [--steps N] "
                 "[--warmup W] [--threads N] [--trace FILE] [--device cpu|cuda[:N]] [--dtype fp32|bf16|fp16] "
                 "[--method prompt-tuning|prefix-tuning]\n";
    return 2;
  }
  const std::string dir = argv[1];
  int64_t B = 8, T = 256, P = 20, steps = 20, warmup = 3, threads = 0;
  std::string trace, device = "cpu", dtype = "fp32", method = "prompt-tuning";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--batch") B = std::stoll(value);
    else if (flag == "--seq") T = std::stoll(value);
    else if (flag == "--virtual") P = std::stoll(value);
    else if (flag == "--steps") steps = std::stoll(value);
    else if (flag == "--warmup") warmup = std::stoll(value);
    else if (flag == "--threads") threads = std::stoll(value);
    else if (flag == "--trace") trace = value;
    else if (flag == "--device") device = value;
    else if (flag == "--dtype") dtype = value;
    else if (flag == "--method") method = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  try {
    if (threads > 0) ptune::setIntraOpThreads(static_cast<int32_t>(threads));
    ptune::LoadOptions load{};
    parseDevice(device, load);
    load.dtype = parseDtype(dtype);
    const ptune::ModelSpec spec = readSpec(dir);
    ptune::Model model(dir.c_str(), spec, load);
    ptune::PromptSpec ps{};
    ps.method = parseMethod(method);  // prefix tuning without projection, PEFT's default
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
    double last_loss = 0;
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    for (int64_t step = 0; step < warmup + steps; ++step) {
      for (auto& id : ids) id = token(rng);
      labels = ids;
      if (step == warmup && !trace.empty()) {
        profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
      }
      synchronize(load);
      const auto start = std::chrono::steady_clock::now();
      const ptune::StepStats stats = trainer.trainMicroBatch(ids.data(), mask.data(), labels.data(), B, T);
      synchronize(load);
      last_loss = stats.loss;
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
                          {"tokens_per_s", static_cast<double>(B * T) / med},
                          {"device", device},
                          {"dtype", dtype},
                          {"method", method},
                          {"last_loss", last_loss},
                          {"peak_cuda_mib", peakCudaMib(load)},
                          {"peak_rss_mib", peakRssMib()}};
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "ptune_step_profile: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
