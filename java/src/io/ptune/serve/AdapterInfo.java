package io.ptune.serve;

import java.nio.file.Path;

/**
 * What {@link AdapterRegistry#adapters()} says about one loaded adapter.
 *
 * @param name the name requests use
 * @param task what it serves
 * @param method the prompt method's CLI name ("prompt-tuning", "p-tuning", "prefix-tuning",
 *     "composite", "dynamic"), or "none" for a classification head without a prompt
 * @param virtualTokens its virtual tokens (prefix slots for prefix tuning), 0 without a prompt
 * @param labels a classifier's labels (empty for generation adapters)
 * @param dir the folder it was loaded from, or null when it was added in memory
 */
public record AdapterInfo(String name, Task task, String method, int virtualTokens, java.util.List<String> labels,
        Path dir) {
    /** What an adapter serves. */
    public enum Task {
        /** Causal-LM generation behind a prompt (POST /v1/generate). */
        GENERATE,
        /** Classification with a prompt classifier (POST /v1/classify). */
        CLASSIFY
    }

    public AdapterInfo {
        labels = java.util.List.copyOf(labels);
    }
}
