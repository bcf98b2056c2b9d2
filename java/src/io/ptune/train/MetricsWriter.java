package io.ptune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.PtuneException;
import io.ptune.internal.JsonFiles;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Writes one JSON line per optimizer step: {@code {"step":s,"loss":l,"lr":x,"tokens_per_s":t}}
 * (and the records a task adds, see {@link #write}).
 * Each line is flushed as it is written, so a killed run keeps its metrics so far.
 */
public final class MetricsWriter implements TrainingListener, AutoCloseable {
    private final Path file;
    private final BufferedWriter writer;
    private volatile boolean closed;

    /** Creates or truncates {@code file} (and its parent directories). */
    public MetricsWriter(Path file) {
        this(file, List.of());
    }

    private MetricsWriter(Path file, List<String> kept) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            this.writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8);
            for (String line : kept) {
                writer.write(line);
                writer.newLine();
            }
            writer.flush();
        } catch (IOException e) {
            throw new PtuneException("cannot write metrics to " + file + ": " + e, e);
        }
    }

    /**
     * Continues {@code file} for a run resumed after optimizer step {@code step}: its lines up to
     * that step stay, the later ones (written by the interrupted run after its checkpoint, and
     * about to be trained again) go.
     */
    public static MetricsWriter resumedAfter(Path file, long step) {
        List<String> kept = new ArrayList<>();
        if (Files.isRegularFile(file)) {
            try {
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    JsonNode json = line.isBlank() ? null : JsonFiles.MAPPER.readTree(line);
                    if (json != null && json.path("step").asLong(Long.MAX_VALUE) <= step) {
                        kept.add(line);
                    }
                }
            } catch (IOException e) {
                throw new PtuneException("cannot read the metrics of the interrupted run in " + file + ": " + e
                        + "; pass another --metrics-out", e);
            }
        }
        return new MetricsWriter(file, kept);
    }

    /** The JSON line for one step, without the newline. */
    public static String toJsonLine(StepMetrics metrics) {
        ObjectNode line = JsonFiles.MAPPER.createObjectNode();
        line.put("step", metrics.step());
        line.put("loss", metrics.loss());
        line.put("lr", metrics.learningRate());
        line.put("tokens_per_s", metrics.tokensPerSecond());
        if (metrics.droppedCycles() > 0) {
            line.put("dropped_cycles", metrics.droppedCycles());
        }
        return line.toString();
    }

    @Override
    public void onStep(StepMetrics metrics) {
        writeLine(toJsonLine(metrics));
    }

    /** Another kind of record (e.g. a classifier's per-epoch dev metrics) as one JSON line. */
    /** A {@code {"step", "dev_loss", ...}} line. */
    @Override
    public void onDev(long step, Map<String, Double> metrics) {
        ObjectNode record = JsonFiles.MAPPER.createObjectNode();
        record.put("step", step);
        metrics.forEach(record::put);
        writeLine(record.toString());
    }

    public void write(JsonNode record) {
        writeLine(record.toString());
    }

    private void writeLine(String line) {
        if (closed) {
            throw new IllegalStateException("metrics file " + file + " is closed");
        }
        try {
            writer.write(line);
            writer.newLine();
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics to " + file, e);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            writer.close();
        } catch (IOException e) {
            throw new PtuneException("cannot close metrics file " + file + ": " + e, e);
        }
    }
}
