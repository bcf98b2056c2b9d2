package io.ptune.data;

import java.util.Objects;

/**
 * One labelled example of a classification data set.
 *
 * @param text the text to classify
 * @param textB the second text of a pair task, or null
 * @param label the label as written in the file
 * @param line the example's line in its file (1-based; the header is line 1), for messages
 */
public record ClassificationExample(String text, String textB, String label, long line) {
    public ClassificationExample {
        Objects.requireNonNull(text, "text");
        Objects.requireNonNull(label, "label");
    }
}
