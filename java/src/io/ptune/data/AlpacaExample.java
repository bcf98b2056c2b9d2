package io.ptune.data;

import java.util.Objects;

/**
 * One Alpaca-style instruction example.
 *
 * @param instruction what the model is asked to do
 * @param input optional context for the instruction; "" when there is none
 * @param output the answer the model should learn to give
 */
public record AlpacaExample(String instruction, String input, String output) {
    public AlpacaExample {
        Objects.requireNonNull(instruction, "instruction");
        Objects.requireNonNull(output, "output");
        input = input == null ? "" : input;
    }
}
