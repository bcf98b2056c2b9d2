package io.ptune.nativebridge;

/** Learning-rate schedules, as transformers' get_{constant,linear,cosine}_schedule_with_warmup. */
public enum LrScheduleKind {
    CONSTANT,
    LINEAR,
    COSINE
}
