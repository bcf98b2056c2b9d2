package io.ptune.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.train.StepMetrics;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training curves: the files, their size and content, and the edge cases of a run's data. */
class TrainingPlotsTest {
    private static final int BLUE = 0x1F77B4;
    private static final int ORANGE = 0xFF7F0E;

    @TempDir
    Path dir;

    private static StepMetrics step(long step, long total, double loss, double lr) {
        return new StepMetrics(step, total, loss, lr, 1000, 1.0, 100);
    }

    @Test
    void thousandsOfNoisyStepsWithNaNsAndDevPoints() throws Exception {
        TrainingPlots plots = new TrainingPlots();
        Random random = new Random(1);
        int n = 6000;
        for (int s = 1; s <= n; s++) {
            double loss = s % 997 == 0 ? Double.NaN : 2.5 * Math.exp(-s / 1500.0) + 0.8 + 0.3 * random.nextGaussian();
            double lr = s <= 300 ? 1e-2 * s / 300 : 1e-2 * (n - s) / (n - 300);
            plots.onStep(step(s, n, loss, lr));
            if (s % 1500 == 0) {
                Map<String, Double> dev = new LinkedHashMap<>();
                dev.put("dev_loss", 2.5 * Math.exp(-s / 1500.0) + 0.9);
                dev.put("dev_accuracy", 0.5 + s / 20000.0);
                plots.onDev(s, dev);
            }
        }
        List<Path> written = plots.write(dir);
        assertEquals(List.of(dir.resolve("loss.png"), dir.resolve("learning_rate.png"), dir.resolve("dev_metrics.png")),
                written);
        BufferedImage loss = Pngs.assertChart(dir.resolve("loss.png"), 800, 500);
        assertTrue(Pngs.pixelsNear(loss, BLUE) > 500, "the smoothed training loss is drawn in blue");
        assertTrue(Pngs.pixelsNear(loss, ORANGE) > 100, "the dev loss is drawn in orange");
        Pngs.assertChart(dir.resolve("learning_rate.png"), 800, 500);
        Pngs.assertChart(dir.resolve("dev_metrics.png"), 800, 500);
        assertTrue(Files.size(dir.resolve("loss.png")) < 200_000, "thinned, so the file stays small");
    }

    @Test
    void oneStepIsAPointAndNoDevChartWithoutDevMetrics() throws Exception {
        TrainingPlots plots = new TrainingPlots();
        plots.onStep(step(1, 1, 3.2, 0.01));
        assertEquals(2, plots.write(dir).size());
        BufferedImage loss = Pngs.assertChart(dir.resolve("loss.png"), 800, 500);
        assertTrue(Pngs.pixelsNear(loss, BLUE) > 20, "the single step shows as a marker");
        Pngs.assertChart(dir.resolve("learning_rate.png"), 800, 500);
        assertFalse(Files.exists(dir.resolve("dev_metrics.png")));
    }

    @Test
    void onlyNaNLossesGiveAFrameWithANoteAndTheLearningRate() throws Exception {
        TrainingPlots plots = new TrainingPlots();
        for (int s = 1; s <= 3; s++) {
            plots.onStep(step(s, 3, s == 2 ? Double.POSITIVE_INFINITY : Double.NaN, 0.01));
        }
        plots.onDev(3, Map.of("dev_loss", Double.NaN));
        plots.write(dir);
        BufferedImage loss = Pngs.assertChart(dir.resolve("loss.png"), 800, 500);
        assertEquals(0, Pngs.pixelsNear(loss, BLUE), "no loss line");
        Pngs.assertChart(dir.resolve("learning_rate.png"), 800, 500);
    }

    @Test
    void constantSeriesAndLossOnlyDevMetrics() throws Exception {
        TrainingPlots plots = new TrainingPlots();
        for (int s = 1; s <= 50; s++) {
            plots.onStep(step(s, 50, 1.0, 3e-3));
        }
        plots.onDev(50, Map.of("dev_loss", 1.0));
        assertEquals(2, plots.write(dir).size(), "dev loss goes on the loss chart; no other dev metric");
        BufferedImage loss = Pngs.assertChart(dir.resolve("loss.png"), 800, 500);
        assertTrue(Pngs.pixelsNear(loss, BLUE) > 200);
        Pngs.assertChart(dir.resolve("learning_rate.png"), 800, 500);
    }

    @Test
    void staleChartsOfAnEarlierRunGo() throws Exception {
        Files.writeString(dir.resolve("dev_metrics.png"), "old");
        Files.writeString(dir.resolve("confusion_matrix.png"), "old");
        TrainingPlots plots = new TrainingPlots();
        plots.onStep(step(1, 1, 2.0, 0.01));
        plots.write(dir);
        assertFalse(Files.exists(dir.resolve("dev_metrics.png")));
        assertFalse(Files.exists(dir.resolve("confusion_matrix.png")));
    }

    @Test
    void confusionMatrixOfTheDevSet() throws Exception {
        TrainingPlots plots = new TrainingPlots();
        plots.onStep(step(1, 2, 0.7, 0.01));
        plots.onStep(step(2, 2, 0.6, 0.01));
        plots.onDev(2, Map.of("dev_accuracy", 0.75));
        plots.confusionMatrix(List.of("negative", "positive"), new long[][] {{3, 1}, {1, 3}});
        assertEquals(4, plots.write(dir).size());
        Pngs.assertChart(dir.resolve("confusion_matrix.png"), 800, 500);
        assertTrue(Files.list(dir).noneMatch(f -> f.getFileName().toString().contains(".tmp")), "no temporary file left");
    }

    @Test
    void scoresInTheUnitIntervalGetAReadableRange() {
        LineChart.YRange range = TrainingPlots.scoreRange(List.of(
                new LineChart.Series("dev accuracy", new double[] {19, 38, 57}, new double[] {0.7787, 0.7626, 0.782}),
                new LineChart.Series("dev macro f1", new double[] {19, 38, 57}, new double[] {0.778, 0.761, Double.NaN})));
        assertEquals(0.65, range.min(), 1e-12);
        assertEquals(0.9, range.max(), 1e-12);
        assertEquals(new LineChart.YRange(0.9, 1.0), TrainingPlots.scoreRange(List.of(
                new LineChart.Series("a", new double[] {1}, new double[] {1.0}))));
        assertEquals(null, TrainingPlots.scoreRange(List.of(
                new LineChart.Series("perplexity", new double[] {1}, new double[] {12.5}))));
    }

    @Test
    void emaIsDebiasedAndSkipsNonFiniteValues() {
        assertArrayEquals(new double[] {2, 2, 2}, TrainingPlots.ema(new double[] {2, 2, 2}, 10), 1e-12);
        double[] smoothed = TrainingPlots.ema(new double[] {4, Double.NaN, 4, 0}, 3);
        assertEquals(4, smoothed[0], 1e-12, "starts at the first value, not at 0");
        assertTrue(Double.isNaN(smoothed[1]));
        assertEquals(4, smoothed[2], 1e-12);
        // Span 3: decay 0.5. Three finite values 4, 4, 0: the average over the weight so far.
        double average = 0.5 * (0.5 * (0.5 * 4) + 0.5 * 4) + 0.5 * 0;
        double weight = 0.5 * (0.5 * 0.5 + 0.5) + 0.5;
        assertEquals(average / weight, smoothed[3], 1e-12);
        assertEquals(1, TrainingPlots.smoothingSpan(5));
        assertEquals(100, TrainingPlots.smoothingSpan(1000));
        assertEquals(200, TrainingPlots.smoothingSpan(1_000_000));
    }
}
