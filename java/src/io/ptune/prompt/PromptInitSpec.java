package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * How an input-level prompt (or one block of a composite prompt) starts: the {@link PromptInit}
 * kind and the value that kind needs. Validated when constructed; errors name the builder field
 * ({@code initText}, {@code labelWords}, {@code initAdapter}).
 *
 * @param init how the prompt starts
 * @param initText the text for {@link PromptInit#TEXT}, else null
 * @param labelWords one entry per class for {@link PromptInit#LABELS} (each may be several
 *     words; its tokens are averaged), else empty
 * @param adapter the adapter directory for {@link PromptInit#FROM_ADAPTER}, else null
 */
public record PromptInitSpec(PromptInit init, String initText, List<String> labelWords, Path adapter) {

    public PromptInitSpec {
        Objects.requireNonNull(init, "init");
        labelWords = List.copyOf(labelWords == null ? List.of() : labelWords);
        if (init == PromptInit.TEXT && (initText == null || initText.isBlank())) {
            throw new InvalidConfigException("initText",
                    "is required when init is TEXT; give the text whose embeddings start the prompt");
        }
        if (init != PromptInit.TEXT && initText != null) {
            throw new InvalidConfigException("initText", "is only used with init TEXT, but init is "
                    + init + "; remove it or set init to TEXT");
        }
        if (init == PromptInit.LABELS) {
            if (labelWords.isEmpty()) {
                throw new InvalidConfigException("labelWords",
                        "is required when init is LABELS; give one label word per class");
            }
            for (int i = 0; i < labelWords.size(); i++) {
                if (labelWords.get(i) == null || labelWords.get(i).isBlank()) {
                    throw new InvalidConfigException("labelWords",
                            "entry " + i + " is blank; every class needs a label word");
                }
            }
        } else if (!labelWords.isEmpty()) {
            throw new InvalidConfigException("labelWords", "is only used with init LABELS, but init is "
                    + init + "; remove it or set init to LABELS");
        }
        if (init == PromptInit.FROM_ADAPTER && adapter == null) {
            throw new InvalidConfigException("initAdapter", "is required when init is FROM_ADAPTER; give"
                    + " the directory of a saved adapter whose prompt starts this one");
        }
        if (init != PromptInit.FROM_ADAPTER && adapter != null) {
            throw new InvalidConfigException("initAdapter", "is only used with init FROM_ADAPTER, but init"
                    + " is " + init + "; remove it or set init to FROM_ADAPTER");
        }
    }

    /** {@link PromptInit#RANDOM}. */
    public static PromptInitSpec random() {
        return new PromptInitSpec(PromptInit.RANDOM, null, List.of(), null);
    }

    /** {@link PromptInit#SAMPLE_VOCAB}. */
    public static PromptInitSpec sampleVocab() {
        return new PromptInitSpec(PromptInit.SAMPLE_VOCAB, null, List.of(), null);
    }

    /** {@link PromptInit#TEXT} with this text. */
    public static PromptInitSpec text(String text) {
        return new PromptInitSpec(PromptInit.TEXT, text, List.of(), null);
    }

    /** {@link PromptInit#LABELS} with one label word (or phrase) per class. */
    public static PromptInitSpec labels(List<String> words) {
        return new PromptInitSpec(PromptInit.LABELS, null, words, null);
    }

    /** {@link PromptInit#FROM_ADAPTER}: the prompt of the adapter saved in {@code dir}. */
    public static PromptInitSpec fromAdapter(Path dir) {
        return new PromptInitSpec(PromptInit.FROM_ADAPTER, null, List.of(), dir);
    }

    /**
     * Parses the command-line form: {@code random | vocab | text:"..." | labels:w1,w2 |
     * from-adapter:DIR}.
     *
     * @param baseDir resolves a relative {@code from-adapter} directory (null = as given)
     * @throws IllegalArgumentException naming the spec when it is none of these
     */
    public static PromptInitSpec parse(String spec, Path baseDir) {
        String trimmed = spec.trim();
        String lower = trimmed.toLowerCase(java.util.Locale.ROOT);
        if (lower.equals("random")) {
            return random();
        } else if (lower.equals("vocab") || lower.equals("sample_vocab") || lower.equals("sample-vocab")) {
            return sampleVocab();
        } else if (lower.startsWith("text:")) {
            return text(stripQuotes(trimmed.substring("text:".length())));
        } else if (lower.startsWith("labels:")) {
            return labels(java.util.Arrays.stream(trimmed.substring("labels:".length()).split(","))
                    .map(String::trim).toList());
        } else if (lower.startsWith("from-adapter:") || lower.startsWith("from_adapter:")) {
            String dir = stripQuotes(trimmed.substring("from-adapter:".length())).strip();
            if (dir.isEmpty()) {
                throw new IllegalArgumentException("init '" + spec + "' names no directory; write"
                        + " from-adapter:DIR");
            }
            Path path = Path.of(dir);
            return fromAdapter(baseDir == null || path.isAbsolute() ? path : baseDir.resolve(path));
        }
        throw new IllegalArgumentException("init '" + spec + "' is not one of random, vocab, text:\"...\","
                + " labels:word1,word2, from-adapter:DIR");
    }

    /** The command-line form of this spec (what {@link #parse} reads back). */
    public String toSpecString() {
        return switch (init) {
            case RANDOM -> "random";
            case SAMPLE_VOCAB -> "vocab";
            case TEXT -> "text:" + initText;
            case LABELS -> "labels:" + String.join(",", labelWords);
            case FROM_ADAPTER -> "from-adapter:" + adapter;
        };
    }

    private static String stripQuotes(String text) {
        String trimmed = text.strip();
        if (trimmed.length() >= 2 && (trimmed.startsWith("\"") && trimmed.endsWith("\"")
                || trimmed.startsWith("'") && trimmed.endsWith("'"))) {
            return trimmed.substring(1, trimmed.length() - 1);
        }
        return text;
    }
}
