package io.ptune.prompt;

import java.util.Locale;

/** The prompt-learning methods ptune trains, with their command-line names. */
public enum PromptMethod {
    /** Prompt tuning (Lester et al. 2021): a trainable (n, C) prompt before the input. */
    PROMPT_TUNING("prompt-tuning"),
    /** P-tuning (Liu et al. 2021): an (n, C) prompt produced by an MLP or bi-LSTM encoder. */
    P_TUNING("p-tuning"),
    /** Prefix tuning / P-tuning v2: trainable key/value prefixes in every attention layer. */
    PREFIX_TUNING("prefix-tuning"),
    /** Several named prompt blocks stacked in order at the input. */
    COMPOSITE("composite"),
    /** An input-conditioned prompt: a generator maps the mean input embedding to (n, C). */
    DYNAMIC("dynamic");

    private final String cliName;

    PromptMethod(String cliName) {
        this.cliName = cliName;
    }

    /** The {@code --method} value. */
    public String cliName() {
        return cliName;
    }

    /** Reads a {@code --method} value (or the enum name), case-insensitively. */
    public static PromptMethod parse(String name) {
        String normal = name.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        for (PromptMethod method : values()) {
            if (method.cliName.equals(normal)) {
                return method;
            }
        }
        throw new IllegalArgumentException("--method '" + name + "' is not one of prompt-tuning, p-tuning,"
                + " prefix-tuning, composite, dynamic");
    }
}
