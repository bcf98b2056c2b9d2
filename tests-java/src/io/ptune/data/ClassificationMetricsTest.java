package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class ClassificationMetricsTest {
    @Test
    void matchesScikitLearnsDefinitions() {
        // gold      0 0 0 1 1 2 2 2 2
        // predicted 0 1 0 1 1 2 0 2 1
        // sklearn: accuracy 6/9; precision [2/3, 2/4, 2/2], recall [2/3, 2/2, 2/4].
        ClassificationMetrics m = ClassificationMetrics.of(List.of("a", "b", "c"),
                new int[] {0, 0, 0, 1, 1, 2, 2, 2, 2}, new int[] {0, 1, 0, 1, 1, 2, 0, 2, 1});
        assertEquals(6.0 / 9, m.accuracy(), 1e-15);  // ratios of small integers: exact to an ulp
        List<ClassificationMetrics.PerClass> c = m.perClass();
        assertEquals(2.0 / 3, c.get(0).precision(), 1e-15);
        assertEquals(0.5, c.get(1).precision(), 1e-15);
        assertEquals(1.0, c.get(1).recall(), 1e-15);
        assertEquals(2.0 / 3, c.get(1).f1(), 1e-15);  // 2 * 0.5 * 1 / 1.5
        assertEquals(4, c.get(2).support());
        double macro = (2.0 / 3 + 2.0 / 3 + 2.0 / 3) / 3;  // class c: 2 * 1 * 0.5 / 1.5
        assertEquals(macro, m.macroF1(), 1e-15);
        assertArrayEquals(new long[] {1, 1, 2}, m.confusion()[2]);
        assertTrue(m.table().contains("accuracy 0.6667  macro-F1 0.6667  (9 examples)"), m.table());
    }

    @Test
    void aClassNeverPredictedHasZeroPrecision() {
        ClassificationMetrics m = ClassificationMetrics.of(List.of("x", "y"), new int[] {0, 1}, new int[] {0, 0});
        assertEquals(0, m.perClass().get(1).precision());
        assertEquals(0, m.perClass().get(1).f1());
        assertEquals(0.5, m.accuracy());
    }
}
