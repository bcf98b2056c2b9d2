package io.ptune.train;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.PtuneException;
import io.ptune.internal.JsonFiles;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes one JSON line per optimizer step: {@code {"step":s,"loss":l,"lr":x,"tokens_per_s":t}}.
 * Each line is flushed as it is written, so a killed run keeps its metrics so far.
 */
public final class MetricsWriter implements TrainingListener, AutoCloseable {
    private final Path file;
    private final BufferedWriter writer;

    /** Creates or truncates {@code file} (and its parent directories). */
    public MetricsWriter(Path file) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            this.writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new PtuneException("cannot write metrics to " + file + ": " + e, e);
        }
    }

    /** The JSON line for one step, without the newline. */
    public static String toJsonLine(StepMetrics metrics) {
        ObjectNode line = JsonFiles.MAPPER.createObjectNode();
        line.put("step", metrics.step());
        line.put("loss", metrics.loss());
        line.put("lr", metrics.learningRate());
        line.put("tokens_per_s", metrics.tokensPerSecond());
        return line.toString();
    }

    @Override
    public void onStep(StepMetrics metrics) {
        try {
            writer.write(toJsonLine(metrics));
            writer.newLine();
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics to " + file, e);
        }
    }

    @Override
    public void close() {
        try {
            writer.close();
        } catch (IOException e) {
            throw new PtuneException("cannot close metrics file " + file + ": " + e, e);
        }
    }
}
