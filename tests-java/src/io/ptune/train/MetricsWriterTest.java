package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsWriterTest {
    @TempDir
    Path dir;

    @Test
    void writesOneJsonObjectPerStep() throws IOException {
        Path file = dir.resolve("sub/metrics.jsonl");
        try (MetricsWriter writer = new MetricsWriter(file)) {
            writer.onStep(new StepMetrics(1, 2, 2.5, 0.01, 1234.5, 0.7, 40));
            writer.onStep(new StepMetrics(2, 2, 2.25, 0.005, 1500, 0.6, 38));
        }
        List<String> lines = Files.readAllLines(file);
        assertEquals(2, lines.size());
        assertEquals("{\"step\":1,\"loss\":2.5,\"lr\":0.01,\"tokens_per_s\":1234.5}", lines.get(0));
        JsonNode second = new ObjectMapper().readTree(lines.get(1));
        assertEquals(2, second.get("step").asInt());
        assertEquals(2.25, second.get("loss").asDouble());
        assertEquals(0.005, second.get("lr").asDouble());
        assertEquals(1500.0, second.get("tokens_per_s").asDouble());
    }

    @Test
    void aResumedRunKeepsTheLinesUpToItsCheckpoint() throws IOException {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsWriter writer = new MetricsWriter(file)) {
            for (int step = 1; step <= 5; step++) {
                writer.onStep(new StepMetrics(step, 8, 3.0 - step * 0.1, 0.01, 100, 0.5, 10));
            }
        }
        try (MetricsWriter writer = MetricsWriter.resumedAfter(file, 3)) {
            writer.onStep(new StepMetrics(4, 8, 1.0, 0.01, 100, 0.5, 10));
        }
        List<String> lines = Files.readAllLines(file);
        assertEquals(4, lines.size());
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < 4; i++) {
            assertEquals(i + 1, json.readTree(lines.get(i)).get("step").asInt());
        }
        assertEquals(1.0, json.readTree(lines.get(3)).get("loss").asDouble());
        try (MetricsWriter writer = MetricsWriter.resumedAfter(dir.resolve("new.jsonl"), 3)) {
            writer.onStep(new StepMetrics(4, 8, 1.0, 0.01, 100, 0.5, 10));
        }
        assertEquals(1, Files.readAllLines(dir.resolve("new.jsonl")).size());
    }
}
