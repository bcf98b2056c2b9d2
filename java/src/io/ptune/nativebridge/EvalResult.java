package io.ptune.nativebridge;

/** Summed cross-entropy over the label tokens of an evaluation batch. */
public record EvalResult(double lossSum, long labelTokens) {}
