package io.ptune.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.PtuneException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The generic line chart: what it draws of the data it is given, and its files. */
class LineChartTest {
    @TempDir
    Path dir;

    @Test
    void sweepOnALogAxisLeavesOutNonPositiveX() throws Exception {
        double[] lr = {0, 1e-4, 1e-3, 1e-2, 1e-1};
        Path png = dir.resolve("sub/sweep.png");
        LineChart.write(png, "Dev loss by learning rate", "learning rate", "dev loss", true, List.of(
                new LineChart.Series("10 tokens", lr, new double[] {9, 2.1, 1.8, 1.5, 2.5}),
                new LineChart.Series("20 tokens", lr, new double[] {9, 2.0, 1.7, Double.NaN, 2.7})));
        Pngs.assertChart(png, 800, 500);
        double[][] kept = LineChart.drawable(lr, new double[] {9, 2.0, 1.7, Double.NaN, 2.7}, true);
        assertArrayEquals(new double[] {1e-4, 1e-3, 1e-1}, kept[0]);
        assertArrayEquals(new double[] {2.0, 1.7, 2.7}, kept[1]);
    }

    @Test
    void longSeriesAreThinnedToTheirEnvelope() {
        int n = 100_000;
        double[] x = new double[n];
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = i + 1;
            y[i] = Math.sin(i * 0.001) + (i == 54_321 ? 100 : 0);
        }
        double[][] kept = LineChart.drawable(x, y, false);
        assertTrue(kept[0].length <= LineChart.MAX_POINTS, "at most " + LineChart.MAX_POINTS + " points");
        assertEquals(100 + Math.sin(54_321 * 0.001), Arrays.stream(kept[1]).max().orElseThrow(), 1e-12,
                "a spike survives thinning");
        for (int i = 1; i < kept[0].length; i++) {
            assertTrue(kept[0][i] > kept[0][i - 1], "x stays in order");
        }
    }

    @Test
    void smallValuesGetShortScientificTicks() {
        assertEquals("3e-5", LineChart.scientific(3e-5));
        assertEquals("1.5e-4", LineChart.scientific(1.5e-4));
        assertEquals("0", LineChart.scientific(0));
        assertEquals("2e5", LineChart.scientific(2e5));
        assertEquals("0.25", LineChart.decimals(3).apply(0.25));
        assertEquals("2", LineChart.decimals(3).apply(2.0));
        assertEquals("0.0012", LineChart.decimals(0.01).apply(0.0012));
    }

    @Test
    void badSeriesAreRefusedWithTheirName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new LineChart.Series("loss", new double[2], new double[3]));
        assertTrue(e.getMessage().contains("'loss'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new LineChart.Series(" ", new double[0], new double[0]));
    }

    @Test
    void anUnwritableFileIsAnErrorNamingIt() throws Exception {
        Path file = dir.resolve("a-file");
        Files.writeString(file, "x");
        Path png = file.resolve("chart.png");
        PtuneException e = assertThrows(PtuneException.class, () -> LineChart.write(png, "t", "x", "y", false,
                List.of(new LineChart.Series("s", new double[] {1, 2}, new double[] {1, 2}))));
        assertTrue(e.getMessage().contains(png.toString()), e.getMessage());
    }
}
