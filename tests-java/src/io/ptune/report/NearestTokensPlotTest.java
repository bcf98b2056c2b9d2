package io.ptune.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The nearest-token heat map of ptune inspect --png. */
class NearestTokensPlotTest {
    @TempDir
    Path dir;

    @Test
    void oneRowPerVirtualTokenAndItsHeightGrowsWithThem() throws Exception {
        for (int n : new int[] {1, 8, 30}) {
            List<List<String>> tokens = new ArrayList<>();
            double[][] cosines = new double[n][3];
            for (int i = 0; i < n; i++) {
                tokens.add(List.of("▁Max", "<0x0A>", "▁a-very-long-token-indeed"));
                cosines[i] = new double[] {0.9, 0.5 - i * 0.01, -0.2};
            }
            Path png = dir.resolve("near-" + n + ".png");
            NearestTokensPlot.write(png, "Nearest tokens", tokens, cosines);
            Pngs.assertChart(png, 800, Math.max(300, 34 * n));
        }
    }

    @Test
    void cellTextIsShortAndControlCharactersAreEscaped() {
        assertEquals("▁Max  0.91", NearestTokensPlot.cellText("▁Max", 0.9123));
        assertEquals("\\x0a  -0.20", NearestTokensPlot.cellText("\n", -0.2));
        assertEquals("␣  0.45", NearestTokensPlot.cellText(" ", 0.45));
        assertEquals("\\u00a0  0.49", NearestTokensPlot.cellText("\u00a0", 0.49));
        assertEquals("\\u200a", NearestTokensPlot.visible("\u200a"));
        assertEquals("▁a b", NearestTokensPlot.visible("▁a b"));
        assertEquals("▁a-very-lon…  0.50", NearestTokensPlot.cellText("▁a-very-long-token-indeed", 0.5));
    }

    @Test
    void raggedRowsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> NearestTokensPlot.chart("t",
                List.of(List.of("a", "b"), List.of("c")), new double[][] {{1, 1}, {1}}));
        assertThrows(IllegalArgumentException.class, () -> NearestTokensPlot.chart("t", List.of(), new double[0][]));
    }
}
