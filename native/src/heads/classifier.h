// Classification heads over a (prompted) backbone's final hidden states. Dimensions: B examples,
// S = Pin + T positions (Pin input-level virtual tokens first), C hidden, V vocabulary, K classes,
// W label words per class, U tokens per word.
//   linear          a trainable (K, C) layer on a pooled vector (transformers' *ForSequenceClassification);
//   verbalizer      PET: the label words' scores at a slot (a [MASK], or the next token of a causal LM)
//                   from the LM / MLM head, with OpenPrompt's ManualVerbalizer semantics;
//   soft verbalizer WARP: trainable class vectors (K, C) scored against the slot's hidden state.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "ptune/ptune.h"

namespace ptune::heads {

/// Label words laid out as OpenPrompt pads them.
struct LabelWords {
  at::Tensor ids;         // (K, W, U) int64, padding 0
  at::Tensor token_mask;  // (K, W, U) 1 on real tokens
  at::Tensor word_mask;   // (K, W) 1 on real words
};

/// Builds the padded layout from words given flat: word_class (N) class of each word,
/// word_offsets (N + 1) into tokens.
LabelWords layoutLabelWords(int64_t num_classes, const std::vector<int64_t>& word_class,
                            const std::vector<int64_t>& word_offsets, const std::vector<int64_t>& tokens,
                            int64_t vocab);

class Classifier {
 public:
  Classifier(const models::Backbone& model, const ClassifierSpec& spec, LabelWords words);

  int64_t numClasses() const { return spec_.num_classes; }
  ClassifierHead kind() const { return static_cast<ClassifierHead>(spec_.head); }
  std::vector<prompt::NamedParameter>& parameters() { return parameters_; }
  const std::vector<prompt::NamedParameter>& parameters() const { return parameters_; }
  prompt::NamedParameter& parameter(const std::string& name);

  /// Class scores (B, K) from the final hidden states hidden (B, S, C) of a batch whose text
  /// tokens are text_mask (B, T) (bool) after Pin virtual tokens; slots (B) int64 are text
  /// positions (verbalizers; ignored by the linear head).
  at::Tensor scores(const models::Backbone& model, const at::Tensor& hidden, const at::Tensor& text_mask,
                    int64_t virtual_tokens, const at::Tensor& slots) const;

  /// The LM / MLM head's vocabulary logits (B, V) at the slots (verbalizers).
  at::Tensor slotLogits(const models::Backbone& model, const at::Tensor& hidden, int64_t virtual_tokens,
                        const at::Tensor& slots) const;

  /// The verbalizer's class scores (B, K) from the slot's vocabulary logits (B, V): OpenPrompt's
  /// ManualVerbalizer.process_logits with post_log_softmax (project, softmax over all label
  /// words, calibration, log, mean over each class's words).
  at::Tensor verbalizerScores(const at::Tensor& slot_logits) const;

  /// Contextual calibration (verbalizer): logits (V), the mean slot logits of content-free inputs;
  /// undefined clears it.
  void setCalibration(const at::Tensor& logits) { calibration_ = logits; }

 private:
  /// OpenPrompt's project + handle_multi_token + word mask: logits (B, V) -> (B, K, W).
  at::Tensor project(const at::Tensor& logits) const;
  /// softmax over all K x W label words: (B, K, W) -> (B, K, W).
  at::Tensor normalize(const at::Tensor& projected) const;

  ClassifierSpec spec_;
  LabelWords words_;
  std::vector<prompt::NamedParameter> parameters_;
  at::Tensor weight_, bias_;  // linear (K, C), (K) or undefined; soft verbalizer (K, C)
  at::Tensor calibration_;    // (V) or undefined
};

}  // namespace ptune::heads
