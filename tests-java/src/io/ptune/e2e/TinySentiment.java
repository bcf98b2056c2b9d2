package io.ptune.e2e;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** A tiny two-class sentiment set (8 sentences, SST-2's TSV columns) for CLI classification tests. */
final class TinySentiment {
    private static final String[] POSITIVE = {"a fun film", "great and fun", "it is fun", "a great one"};
    private static final String[] NEGATIVE = {"too long and dull", "dull and bad", "it is bad", "a bad one"};

    private TinySentiment() {}

    /** Writes the set to {@code file} as "sentence\tlabel" rows, alternating the classes; returns it. */
    static Path writeTsv(Path file) throws IOException {
        StringBuilder tsv = new StringBuilder("sentence\tlabel\n");
        for (int i = 0; i < POSITIVE.length; i++) {
            tsv.append(POSITIVE[i]).append("\tpositive\n").append(NEGATIVE[i]).append("\tnegative\n");
        }
        return Files.writeString(file, tsv);
    }
}
