package io.ptune.model;

import io.ptune.nativebridge.NativePrompt;

/**
 * A prompt that runs in front of one {@link Model} (what {@link Model#logits} and
 * {@link Model#hiddenStates} take). Implemented by {@code io.ptune.prompt.PromptModule}; this
 * interface keeps the model package free of the prompt package.
 */
public interface ModelPrompt {
    /** The model the prompt was created for. */
    Model model();

    /** Input-level virtual positions it prepends (0 for prefix tuning). */
    int inputVirtualTokens();

    /** The native handle. */
    NativePrompt nativePrompt();
}
