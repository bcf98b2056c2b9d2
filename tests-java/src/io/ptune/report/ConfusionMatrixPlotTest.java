package io.ptune.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Confusion matrices from 2 to 20 classes, long labels, and bad matrices. */
class ConfusionMatrixPlotTest {
    @TempDir
    Path dir;

    @Test
    void twoClasses() throws Exception {
        Path png = dir.resolve("cm.png");
        long[][] counts = {{380, 48}, {60, 384}};
        ConfusionMatrixPlot.write(png, ConfusionMatrixPlot.title("Dev confusion matrix", counts),
                List.of("negative", "positive"), counts);
        Pngs.assertChart(png, 800, 600);
        assertEquals("Dev confusion matrix (872 examples, accuracy 0.876)", ConfusionMatrixPlot.title(
                "Dev confusion matrix", counts));
    }

    @Test
    void twentyClassesWithLongNames() throws Exception {
        int k = 20;
        List<String> labels = new ArrayList<>();
        long[][] counts = new long[k][k];
        Random random = new Random(3);
        for (int i = 0; i < k; i++) {
            labels.add(i % 3 == 0 ? "a rather long label name number " + i : "class_" + i);
            for (int j = 0; j < k; j++) {
                counts[i][j] = i == j ? 100 + random.nextInt(900) : random.nextInt(30);
            }
        }
        Path png = dir.resolve("cm20.png");
        ConfusionMatrixPlot.write(png, "20 classes", labels, counts);
        Pngs.assertChart(png, 800, 600);
    }

    @Test
    void longLabelsKeepBothEndsAndStayDistinct() {
        List<String> shown = ConfusionMatrixPlot.shortLabels(List.of("a rather long label name number 3",
                "a rather long label name number 13", "short", "short", "  "));
        assertEquals("a rather …number 3", shown.get(0));
        assertEquals("a rather …umber 13", shown.get(1));
        assertEquals(List.of("short", "short #2", "(empty)"), shown.subList(2, 5));
        for (String s : shown) {
            assertTrue(s.codePointCount(0, s.length()) <= ConfusionMatrixPlot.MAX_LABEL + 3, s);
        }
    }

    @Test
    void aMatrixThatDoesNotFitTheLabelsIsRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> ConfusionMatrixPlot.chart("t", List.of("a", "b"), new long[][] {{1, 2}}));
        assertThrows(IllegalArgumentException.class,
                () -> ConfusionMatrixPlot.chart("t", List.of("a", "b"), new long[][] {{1, 2}, {3}}));
        assertThrows(IllegalArgumentException.class,
                () -> ConfusionMatrixPlot.chart("t", List.of("a"), new long[][] {{-1}}));
    }
}
