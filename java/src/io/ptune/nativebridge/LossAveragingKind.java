package io.ptune.nativebridge;

/** ptune::LossAveraging, in the native order. */
public enum LossAveragingKind {
    TOKENS,
    MICRO_BATCHES
}
