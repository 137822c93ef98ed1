"""Building blocks with no task knowledge: one cell is one step, one layer holds the time loop."""

from rnnkit.nn.cells import (CELLS, Cell, GRUCell, JordanCell, LSTMCell, MinGRUCell, MinLSTMCell, PeepholeLSTMCell,
                             ScanCell, SimpleRNNCell, make_cell)
from rnnkit.nn.layers import RNN

__all__ = ["CELLS", "Cell", "GRUCell", "JordanCell", "LSTMCell", "MinGRUCell", "MinLSTMCell", "PeepholeLSTMCell",
           "RNN", "ScanCell", "SimpleRNNCell", "make_cell"]
