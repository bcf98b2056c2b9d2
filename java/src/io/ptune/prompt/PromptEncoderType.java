package io.ptune.prompt;

/** P-tuning's reparameterisation, PEFT's {@code encoder_reparameterization_type}. */
public enum PromptEncoderType {
    /** Linear(C, h), ReLU, Linear(h, h), ReLU, Linear(h, C). PEFT's recommended default. */
    MLP,
    /** A bi-LSTM (C -> h, encoderNumLayers layers) then Linear(2h, 2h), ReLU, Linear(2h, C). */
    LSTM
}
