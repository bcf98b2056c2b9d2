package io.ptune.classify;

import io.ptune.InvalidConfigException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Label words per class, e.g. {@code negative=bad,terrible;positive=good,great}. Several words per
 * class are averaged (OpenPrompt's ManualVerbalizer). Each word is tokenised with a space before
 * it ({@code " great"}), as it would follow the template's text; a word written with a leading
 * {@code <!>} is tokenised as written, without the space.
 *
 * @param words label -> its words, in the order written
 */
public record Verbalizer(Map<String, List<String>> words) {
    public Verbalizer {
        Objects.requireNonNull(words, "words");
        Map<String, List<String>> copy = new LinkedHashMap<>();
        words.forEach((label, list) -> copy.put(label, List.copyOf(list)));
        words = java.util.Collections.unmodifiableMap(copy);
        if (words.isEmpty()) {
            throw new InvalidConfigException("verbalizer", "has no classes; write it like"
                    + " \"negative=bad,terrible;positive=good,great\"");
        }
        for (Map.Entry<String, List<String>> entry : words.entrySet()) {
            if (entry.getValue().isEmpty()) {
                throw new InvalidConfigException("verbalizer", "class '" + entry.getKey() + "' has no label words");
            }
            for (String word : entry.getValue()) {
                if (word.isBlank()) {
                    throw new InvalidConfigException("verbalizer", "class '" + entry.getKey() + "' has an empty word");
                }
            }
        }
    }

    /**
     * Parses {@code label=word,word;label=word}.
     *
     * @throws InvalidConfigException (field "verbalizer") when a class has no '=', no words, or
     *     appears twice
     */
    public static Verbalizer parse(String text) {
        if (text == null || text.isBlank()) {
            throw new InvalidConfigException("verbalizer", "is empty; write it like"
                    + " \"negative=bad,terrible;positive=good,great\"");
        }
        Map<String, List<String>> words = new LinkedHashMap<>();
        for (String entry : text.split(";")) {
            if (entry.isBlank()) {
                continue;
            }
            int eq = entry.indexOf('=');
            if (eq < 0) {
                throw new InvalidConfigException("verbalizer", "'" + entry.trim() + "' has no '='; write each class"
                        + " as label=word1,word2 and separate classes with ';'");
            }
            String label = entry.substring(0, eq).trim();
            if (label.isEmpty()) {
                throw new InvalidConfigException("verbalizer", "'" + entry.trim() + "' has no label before '='");
            }
            List<String> list = new ArrayList<>();
            for (String word : entry.substring(eq + 1).split(",")) {
                if (!word.isBlank()) {
                    list.add(word.trim());
                }
            }
            if (words.put(label, list) != null) {
                throw new InvalidConfigException("verbalizer", "class '" + label + "' is given twice");
            }
        }
        return new Verbalizer(words);
    }

    /** Label words from the label names themselves (a soft verbalizer's default). */
    public static Verbalizer ofLabels(List<String> labels) {
        Map<String, List<String>> words = new LinkedHashMap<>();
        for (String label : labels) {
            words.put(label, List.of(label));
        }
        return new Verbalizer(words);
    }

    /** The labels, in the order written. */
    public List<String> labels() {
        return List.copyOf(words.keySet());
    }

    /**
     * Checks that the verbalizer covers exactly {@code labels}.
     *
     * @throws InvalidConfigException (field "verbalizer") naming a label it misses or has extra
     */
    public void checkCovers(List<String> labels) {
        for (String label : labels) {
            if (!words.containsKey(label)) {
                throw new InvalidConfigException("verbalizer", "label '" + label + "' of the data is missing from"
                        + " the verbalizer (it has " + words.keySet() + "); add " + label + "=word1,word2");
            }
        }
        for (String label : words.keySet()) {
            if (!labels.contains(label)) {
                throw new InvalidConfigException("verbalizer", "class '" + label + "' is not a label of the data"
                        + " (labels: " + labels + ")");
            }
        }
    }

    /** The {@code label=word,word;...} form. */
    @Override
    public String toString() {
        StringBuilder out = new StringBuilder();
        words.forEach((label, list) -> {
            if (out.length() > 0) {
                out.append(';');
            }
            out.append(label).append('=').append(String.join(",", list));
        });
        return out.toString();
    }
}
